"""Data larger than memory (issue 27): peak RSS and images per second on generated image folders.

    .venv/bin/python benchmarks/data_scale.py all [--root outputs/data-scale] [--sizes 2000 20000 100000]

Parts (each also alone: ``generate``, ``rss``, ``feed``, ``sweep``), saved together in
``benchmarks/results/data_scale.json``:

1. ``generate``: folders of 64x64 RGB PNG images, 10 classes (a class is a colour and a
   stripe direction under noise, so a CNN learns it), of each size; kept between runs.
2. ``rss``: whole ``cnnkeras run`` processes, one epoch of a small CNN, tracked in SQLite:
   ``before`` (main's loader, exported with ``git archive main``: every image decoded into
   float32 arrays), ``memory`` (this branch, ``data.storage: memory``) and ``stream``
   (cold: decoding into an empty cache, then warm: the cache mapped). Peak RSS is the
   process's own (``wait4``), with CPU seconds and training images per second.
3. ``feed``: on TensorFlow and on JAX, how many images per second each input pipeline
   feeds ``model.fit`` (a model that does almost nothing, so the pipeline is the limit),
   against ResNet-18 (``small_input``) training steps on this CPU; then ResNet-18 trained
   for a few steps fed by the streamed pipeline and by in-memory arrays (does the step wait?).
4. ``sweep``: ``cnnkeras sweep`` of 4 trials on the 20k folder with an empty cache, one
   job and two: how many times the folder is decoded (the cache's ``decode.log``).

The machine is shared: each result carries the load average it was measured under.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, run_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SIZE = 64
CLASSES = 10

MODEL = """
model:
  arch: sequential
  layers:
    - {type: conv2d, filters: 16, kernel_size: 3, strides: 2, padding: same, activation: relu}
    - {type: conv2d, filters: 32, kernel_size: 3, strides: 2, padding: same, activation: relu}
    - {type: global_avg_pool}
"""


def load() -> dict[str, Any]:
    return {"uptime": os.getloadavg(), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}


# ----------------------------------------------------------------- generate


def _image(args: tuple[int, int, str]) -> int:
    import numpy as np
    from PIL import Image

    index, label, path = args
    rng = np.random.default_rng(index)
    hue = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], dtype=np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = label * np.pi / CLASSES
    stripes = 0.5 + 0.5 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / 3.0 + rng.uniform(0, 6.28))
    pixels = hue * 0.6 + stripes[..., None] * 90 + rng.normal(0, 40, (SIZE, SIZE, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return index


def generate(root: Path, n: int) -> Path:
    """``root/n`` with n PNG images in CLASSES class folders (made once; kept)."""
    folder = root / str(n)
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    jobs = []
    for label in range(CLASSES):
        (folder / f"class{label}").mkdir(parents=True)
    for i in range(n):
        label = i % CLASSES
        jobs.append((i, label, str(folder / f"class{label}" / f"{i:06d}.png")))
    started = time.perf_counter()
    with Pool(os.cpu_count() or 2) as pool:
        for _ in pool.imap_unordered(_image, jobs, chunksize=256):
            pass
    done.write_text(f"{n} images in {time.perf_counter() - started:.0f} s\n")
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.png"))


# ---------------------------------------------------------------------- rss


def _config(tmp: Path, folder: Path, *, storage: str | None, name: str) -> Path:
    data = f"source: image_folder, path: {folder}, color_mode: rgb"
    if storage:
        data += f", storage: {storage}"
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        seed: 1
        data: {{{data}}}
        train: {{epochs: 1, batch_size: 128, optimizer: {{name: adam, learning_rate: 0.003}}}}
        tracking: {{uri: "sqlite:///{tmp / 'mlflow.db'}", log_model: false, log_plots: false}}
        """) + MODEL)
    return path


def _main_checkout() -> Path:
    """main's tree (its in-memory loader), exported to a temporary folder."""
    target = Path(tempfile.gettempdir()) / "cnnkeras-main-for-data-scale"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    archive = subprocess.run(["git", "archive", "main"], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _run(config: Path, *, pythonpath: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    if cache is not None:
        env["CNNKERAS_CACHE_DIR"] = str(cache)
    before = load()
    result = run_process([PYTHON, "-m", "cnnkeras.cli", "run", str(config), "--quiet"], cwd=config.parent, env=env)
    output = result.pop("output")
    if result["returncode"] != 0:
        result["error"] = output[-1500:]
    result["load_before"] = before["uptime"]
    for line in output.splitlines():
        if "decoded" in line and "images in" in line:
            result["decode_line"] = line.strip()
    return result


def rss(root: Path, sizes: list[int], *, before_up_to: int = 20_000, memory_up_to: int = 20_000) -> dict[str, Any]:
    main = _main_checkout()
    out: dict[str, Any] = {"model": "2 strided convs (16, 32) + global average pooling, 1 epoch, batch 128",
                           "load": load(), "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="data-scale-") as tmp_name:
        tmp = Path(tmp_name)
        for n in sizes:
            folder = generate(root, n)
            row: dict[str, Any] = {"png_bytes": folder_bytes(folder)}
            cache = tmp / f"cache-{n}"
            if n <= before_up_to:
                row["before"] = _run(_config(tmp, folder, storage=None, name=f"before{n}"), pythonpath=main)
            if n <= memory_up_to:
                row["memory"] = _run(_config(tmp, folder, storage="memory", name=f"memory{n}"), cache=cache)
            shutil.rmtree(cache, ignore_errors=True)
            row["stream_cold"] = _run(_config(tmp, folder, storage="stream", name=f"cold{n}"), cache=cache)
            row["stream_warm"] = _run(_config(tmp, folder, storage="stream", name=f"warm{n}"), cache=cache)
            row["cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*.npy"))
            shutil.rmtree(cache, ignore_errors=True)
            out["sizes"][str(n)] = row
            print(json.dumps({n: {k: (v["peak_rss_mb"], v["wall_s"]) if isinstance(v, dict) and "peak_rss_mb" in v
                                  else v for k, v in row.items()}}), flush=True)
    shutil.rmtree(main, ignore_errors=True)
    streams = [out["sizes"][str(n)]["stream_warm"]["peak_rss_mb"] for n in sizes]
    colds = [out["sizes"][str(n)]["stream_cold"]["peak_rss_mb"] for n in sizes]
    out["stream_peak_rss_spread_mb"] = {"warm": max(streams) - min(streams), "cold": max(colds) - min(colds)}
    return out


# --------------------------------------------------------------------- feed

FEED_CHILD = r'''
import json, os, sys, time, statistics
import numpy as np
folder, cache, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
os.environ["CNNKERAS_CACHE_DIR"] = cache
import keras
from cnnkeras.config.schema import DataConfig, ModelConfig, TrainConfig
from cnnkeras.data import load_dataset
from cnnkeras.data.stream import StreamBatches
from cnnkeras.zoo.build import model_from_config
from cnnkeras.training.compile import compile_model
backend = keras.backend.backend()
BATCH = 64
result = {"backend": backend, "batch_size": BATCH}
stream = load_dataset(DataConfig(source="image_folder", path=folder, color_mode="rgb", storage="stream"), seed=0)
raw = load_dataset(DataConfig(source="image_folder", path=folder, color_mode="rgb", storage="stream", cache=False),
                   seed=0)
n = len(stream.x_train)
result["n_train"] = n

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): self.times.append(time.perf_counter() - self.t)

def trivial():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    m.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m

def feed_rate(make_inputs, epochs=3, images=None):
    m, clock = trivial(), Clock(); clock.times = []
    inputs = make_inputs()
    m.fit(**inputs, epochs=epochs, verbose=0, callbacks=[clock])
    return (images or n) / statistics.median(clock.times[1:])  # the first epoch traces

def stream_inputs(x, y, workers):  # without EpochOrder the batches advance their epoch themselves
    return {"x": StreamBatches(x, y, batch_size=BATCH, seed=0, shuffle=True, workers=workers), "shuffle": False}

def fit_with(inputs_fn):
    return inputs_fn

rates = {}
print("feed rates", flush=True)
x_mem = np.asarray(stream.x_train[np.arange(n)]); y_mem = stream.y_train
rates["in-memory arrays"] = feed_rate(lambda: {"x": x_mem, "y": y_mem, "batch_size": BATCH})
for w in (1, 2, 4):
    rates[f"StreamBatches, cache, {w} thread(s)"] = feed_rate(
        fit_with(lambda: stream_inputs(stream.x_train, stream.y_train, w)))
sub = 3200
xs, ys = raw.x_train, raw.y_train
from cnnkeras.data.arrays import SplitView
raw_sub = SplitView(xs.base, xs.positions[:sub], xs.transform, xs.shape[1:], xs.dtype)
for w in (1, 2):
    rates[f"StreamBatches, decoding PNGs (no cache), {w} thread(s)"] = feed_rate(
        fit_with(lambda: stream_inputs(raw_sub, ys[:sub], w)), epochs=2 if w == 1 else 3, images=sub)

class KerasWorkers(keras.utils.PyDataset):
    def __init__(self, x, y, workers):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.x, self.y = x, y
        self.order = np.random.default_rng(0).permutation(len(x))
    def __len__(self): return -(-len(self.x) // BATCH)
    def __getitem__(self, i):
        rows = self.order[i * BATCH:(i + 1) * BATCH]
        return self.x[rows], self.y[rows]
rates["keras.utils.PyDataset workers=2 (Keras' enqueuer), cache"] = feed_rate(
    lambda: {"x": KerasWorkers(stream.x_train, stream.y_train, 2), "shuffle": False})

if backend == "tensorflow":
    import tensorflow as tf
    def tf_inputs():
        def read(idx):
            return stream.x_train[np.sort(idx)], stream.y_train[np.sort(idx)]
        ds = tf.data.Dataset.from_tensor_slices(np.arange(n)).shuffle(n, seed=0).batch(BATCH)
        ds = ds.map(lambda i: tf.numpy_function(read, [i], (tf.float32, tf.int64)), num_parallel_calls=2,
                    deterministic=True)
        ds = ds.map(lambda x, y: (tf.ensure_shape(x, (None, 64, 64, 3)), tf.ensure_shape(y, (None,))))
        return {"x": ds.prefetch(2)}
    rates["tf.data (numpy_function reads, 2 parallel calls), cache"] = feed_rate(tf_inputs)
try:
    import grain
    def grain_inputs():
        order = np.random.default_rng(0).permutation(n)
        def read(i):
            rows = np.sort(order[i * BATCH:(i + 1) * BATCH])
            return stream.x_train[rows], stream.y_train[rows]
        ds = grain.MapDataset.range(-(-n // BATCH)).map(read)
        return {"x": ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))}
    rates["grain (2 threads), cache"] = feed_rate(grain_inputs)
except ImportError:
    rates["grain"] = None
result["feed_images_per_s"] = rates

# ResNet-18 (small_input) training step on this CPU
model = model_from_config(ModelConfig(arch="resnet18", small_input=True), input_shape=(64, 64, 3), num_classes=10)
compile_model(model, TrainConfig(batch_size=BATCH), head="multiclass", steps_per_epoch=100)
xb, yb = x_mem[:BATCH], y_mem[:BATCH]
model.train_on_batch(xb, yb)
print("resnet18 compiled", flush=True)
steps = []
for _ in range(3):
    t = time.perf_counter(); model.train_on_batch(xb, yb); steps.append(time.perf_counter() - t)
result["resnet18_step_s"] = statistics.median(steps)
result["resnet18_images_per_s"] = BATCH / statistics.median(steps)
result["resnet18_params"] = model.count_params()
# ResNet-18 fit fed by the streamed pipeline and by arrays: seconds per step (the second epoch)
k = 3 * BATCH
def resnet_epoch(inputs):
    clock = Clock(); clock.times = []
    model.fit(**inputs, epochs=2, verbose=0, callbacks=[clock])
    return clock.times[-1] / (k // BATCH)
sub_stream = SplitView(stream.x_train.base, stream.x_train.positions[:k], stream.x_train.transform,
                       stream.x_train.shape[1:], stream.x_train.dtype)
b = StreamBatches(sub_stream, y_mem[:k], batch_size=BATCH, seed=0, workers=2)
result["resnet18_fit_step_s"] = {
    "streamed (cache, 2 threads)": resnet_epoch({"x": b, "shuffle": False}),
    "in-memory arrays": resnet_epoch({"x": x_mem[:k], "y": y_mem[:k], "batch_size": BATCH}),
}
import resource
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
json.dump(result, open(out_path, "w"), indent=1)
'''


def feed(root: Path, n: int = 20_000) -> dict[str, Any]:
    folder = generate(root, n)
    out: dict[str, Any] = {"folder_images": n, "load": load()}
    with tempfile.TemporaryDirectory(prefix="data-feed-") as tmp_name:
        tmp = Path(tmp_name)
        for backend in ("tensorflow", "jax"):
            child = tmp / "child.py"
            child.write_text(FEED_CHILD)
            result_file = tmp / f"{backend}.json"
            started = load()
            done = run_process([PYTHON, str(child), str(folder), str(tmp / "cache"), str(result_file)],
                               env={"KERAS_BACKEND": backend})
            if done["returncode"] != 0:
                out[backend] = {"error": done["output"][-3000:]}
                continue
            result = json.loads(result_file.read_text())
            result["load_before"] = started["uptime"]
            rates = {k: v for k, v in result["feed_images_per_s"].items() if v}
            streamed = max(v for k, v in rates.items() if k.startswith("StreamBatches, cache"))
            result["chosen_pipeline_images_per_s"] = streamed
            result["feed_over_resnet18_step"] = streamed / result["resnet18_images_per_s"]
            out[backend] = result
            print(json.dumps({backend: {k: round(v) for k, v in rates.items()},
                              "resnet18_images_per_s": round(result["resnet18_images_per_s"], 1),
                              "fit_step_s": result["resnet18_fit_step_s"]}), flush=True)
    return out


# -------------------------------------------------------------------- sweep


def sweep(root: Path, n: int = 20_000) -> dict[str, Any]:
    folder = generate(root, n)
    out: dict[str, Any] = {"folder_images": n, "trials": 4, "load": load()}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory(prefix="data-sweep-") as tmp_name:
            tmp = Path(tmp_name)
            path = _config(tmp, folder, storage="stream", name="sweep")
            path.write_text(path.read_text() + textwrap.dedent("""
                search:
                  n_trials: 4
                  pruner: {name: none}
                  parameters:
                    train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
                """))
            cache = tmp / "cache"
            done = run_process([PYTHON, "-m", "cnnkeras.cli", "sweep", str(path), "--quiet", "--jobs", str(jobs)],
                               cwd=tmp, env={"CNNKERAS_CACHE_DIR": str(cache)})
            log = (cache / "decode.log").read_text().splitlines() if (cache / "decode.log").exists() else []
            out[f"jobs_{jobs}"] = {"returncode": done["returncode"], "wall_s": done["wall_s"], "cpu_s": done["cpu_s"],
                                   "peak_rss_mb_main_process": done["peak_rss_mb"], "decodes": len(log),
                                   "decode_log": log, "waited_lines": done["output"].count("waiting for"),
                                   "tail": done["output"][-800:] if done["returncode"] else ""}
            print(json.dumps({f"jobs {jobs}": {"decodes": len(log), "wall_s": round(done["wall_s"], 1),
                                               "rc": done["returncode"]}}), flush=True)
    return out


def save_part(name: str, payload: dict[str, Any]) -> None:
    path = RESULTS / "data_scale.json"
    existing = json.loads(path.read_text()) if path.exists() else {"benchmark": "data_scale"}
    existing[name] = payload
    existing["machine"] = {"cpus": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                                       * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=1) + "\n")
    print(f"saved {path} ({name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["generate", "rss", "feed", "sweep", "all"])
    parser.add_argument("--root", type=Path, default=REPO / "outputs" / "data-scale")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    args = parser.parse_args()
    if args.part in ("generate", "all"):
        for n in args.sizes:
            started = time.perf_counter()
            folder = generate(args.root, n)
            print(f"{folder}: {n:,} images, {folder_bytes(folder) / 2**20:.0f} MB "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    if args.part in ("rss", "all"):
        save_part("rss", rss(args.root, args.sizes))
    if args.part in ("feed", "all"):
        save_part("feed", feed(args.root))
    if args.part in ("sweep", "all"):
        save_part("sweep", sweep(args.root))


if __name__ == "__main__":
    main()
