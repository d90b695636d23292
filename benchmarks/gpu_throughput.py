"""Training-step throughput on a GPU: cnnkeras' small-input ResNet-18 on JAX against plain PyTorch.

Images per second of a training step (forward, backward, SGD with momentum) on 32x32x3
batches of 256 in bfloat16 mixed precision:

- cnnkeras: the zoo's ``resnet18(small_input=True)`` (CIFAR stem: 3x3 stride 1, no max
  pool), Keras on JAX with the ``mixed_bfloat16`` policy, ``model.fit`` over arrays already
  on the device (as ``cnnkeras run`` feeds them on a GPU), ``steps_per_execution`` steps per
  compiled call;
- the peer: the same network written in PyTorch, ``torch.compile``, ``torch.autocast``
  (bfloat16) and ``channels_last``, one fixed batch on the device.

Each side runs in its own process (one framework's allocator per process), alternating,
after warm-up; the median of the timed rounds. Model FLOP utilization = 3 x forward FLOPs
x images/s / the device's peak dense bfloat16 FLOP/s (``--peak-tflops``; H100/H200 SXM:
989). Goal (issue 18): at least 1.0x the peer's images/s.

    python benchmarks/gpu_throughput.py [--steps 100] [--rounds 3] [--peak-tflops 989]

On a machine without a GPU it says so and exits 0 (``--allow-cpu`` runs the Keras side on
the CPU with a few steps, to check the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

BATCH, SHAPE, CLASSES = 256, (32, 32, 3), 10


def keras_side(steps: int, steps_per_execution: int, allow_cpu: bool) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    from cnnkeras.zoo import build_model
    from cnnkeras.zoo.inspect import inspect

    device = jax.devices()[0]
    if device.platform != "gpu" and not allow_cpu:
        raise SystemExit("no GPU for JAX")
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_model("resnet18", input_shape=SHAPE, num_classes=CLASSES, small_input=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.random((BATCH * steps, *SHAPE), dtype=np.float32))
    y = jax.device_put(rng.integers(0, CLASSES, BATCH * steps))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)  # fit reads the loss back: the device is idle

    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[Timer()])
    keras.config.set_dtype_policy("float32")
    macs = inspect(build_model("resnet18", input_shape=SHAPE, num_classes=CLASSES, small_input=True)).attrs["macs"]
    return {"images_per_s": BATCH * steps / min(times[1:]), "epoch_s": times, "forward_macs": macs,
            "device": getattr(device, "device_kind", device.platform), "jax": jax.__version__,
            "keras": keras.__version__}


def torch_side(steps: int) -> dict:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        raise SystemExit("no GPU for PyTorch")

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                          if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            out = F.relu(self.b1(self.c1(x)))
            return F.relu(self.b2(self.c2(out)) + self.short(x))

    class ResNet18Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            blocks, cin = [], 64
            for stage, cout in enumerate((64, 128, 256, 512)):
                for i in range(2):
                    blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, CLASSES)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))

    model = ResNet18Small().cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    compiled = torch.compile(model)
    x = torch.rand(BATCH, SHAPE[2], *SHAPE[:2], device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,), device="cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(20):  # compilation and autotuning
        step()
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"images_per_s": BATCH * steps / min(times), "window_s": times,
            "device": torch.cuda.get_device_name(0), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-execution", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="Peak dense bf16 TFLOP/s of the GPU.")
    parser.add_argument("--allow-cpu", action="store_true")
    parser.add_argument("--side", choices=["keras", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "keras":
        print(json.dumps(keras_side(args.steps, args.steps_per_execution, args.allow_cpu)))
        return
    if args.side == "torch":
        print(json.dumps(torch_side(args.steps)))
        return
    if not args.allow_cpu and not _gpu_present():
        print("no GPU here: nothing measured (the figure is recorded only on a GPU machine)")
        return
    sides = ["keras"] if args.allow_cpu else ["keras", "torch"]
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in (sides if round_ % 2 == 0 else sides[::-1]):
            command = [sys.executable, __file__, "--side", side, "--steps", str(args.steps),
                       "--steps-per-execution", str(args.steps_per_execution)]
            command += ["--allow-cpu"] if args.allow_cpu else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[side].append(row)
            print(f"round {round_} {side:5s} {row['images_per_s']:9.0f} images/s on {row['device']}", flush=True)
    summary = {side: statistics.median(r["images_per_s"] for r in rows) for side, rows in results.items()}
    flops = 3 * 2 * results["keras"][0]["forward_macs"]  # forward + backward (2x), MACs -> FLOPs
    mfu = {side: flops * ips / (args.peak_tflops * 1e12) for side, ips in summary.items()}
    for side, ips in summary.items():
        print(f"{side}: {ips:.0f} images/s, model FLOP utilization {mfu[side]:.1%} of {args.peak_tflops:g} TFLOP/s")
    if "torch" in summary:
        print(f"cnnkeras (JAX) / PyTorch = {summary['keras'] / summary['torch']:.2f}x (goal >= 1.0x)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import save

    device = results["keras"][0]["device"]
    save(f"gpu_throughput_{device.replace(' ', '_').lower()}", {
        "args": vars(args), "device": device, "runs": results, "median_images_per_s": summary,
        "model_flop_utilization": mfu, "train_step_flops_per_image": flops,
        "ratio": summary["keras"] / summary["torch"] if "torch" in summary else None}, backend="jax")


def _gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None and \
        subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


if __name__ == "__main__":
    main()
