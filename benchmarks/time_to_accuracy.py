"""Time to 99.0% MNIST test accuracy: ``cnnkeras run experiments/mnist-99.yaml`` against
Keras' public ``mnist_convnet`` example (benchmarks/peers/mnist_convnet.py).

Whole processes from start, as a user runs them, alternating, one pair per seed (three
seeds). The peer is the example as documented (batch 128, Adam, 10% validation), with
the test accuracy evaluated after each epoch and stopped at the first epoch reaching the
target. cnnkeras trains the recipe's fixed number of epochs (no stopping on the test
set), with tracking, test evaluation and every artifact, into an MLflow store that
already exists (a user's second run; the first creates it, about 3 s more).
Reports wall and CPU seconds (steadier on a shared machine) and each seed's final
test accuracy. Goal: at most 0.5x the peer's wall and CPU seconds, every seed >= 99.0%.

    .venv/bin/python benchmarks/time_to_accuracy.py [--seeds 0 1 2] [--backend tensorflow]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from common import MNIST, median, run_process, save

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "experiments" / "mnist-99.yaml"
PEER = Path(__file__).resolve().parent / "peers" / "mnist_convnet.py"
CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))
TARGET = 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", default="tensorflow", help="cnnkeras' backend (the peer runs on TensorFlow).")
    args = parser.parse_args()
    if not MNIST.exists():
        raise SystemExit(f"needs {MNIST}")
    rows: dict[str, list[dict]] = {"peer": [], "cnnkeras": []}
    with tempfile.TemporaryDirectory() as tmp:
        ours = [CNNKERAS, "run", str(RECIPE), f"data.path={MNIST}", "-q", "--backend", args.backend]
        warm = run_process(ours + ["train.epochs=1", "data.subset=2000"], cwd=tmp)  # creates the MLflow store
        if warm["returncode"] != 0:
            raise SystemExit(f"cnnkeras failed:\n{warm['output']}")
        for i, seed in enumerate(args.seeds):
            for side in (["peer", "cnnkeras"] if i % 2 == 0 else ["cnnkeras", "peer"]):
                if side == "peer":
                    done = run_process([sys.executable, str(PEER), str(MNIST), "--seed", str(seed)], cwd=tmp)
                    epochs = re.findall(r"epoch (\d+) test_accuracy ([\d.]+)", done["output"])
                    accuracy, epochs_run = (float(epochs[-1][1]), int(epochs[-1][0])) if epochs else (None, None)
                else:
                    done = run_process(ours + [f"seed={seed}"], cwd=tmp)
                    found = re.search(r"test_accuracy\s*│\s*([\d.]+)", done["output"])
                    accuracy = float(found.group(1)) if found else None
                    found = re.search(r"epochs_run\s*│\s*(\d+)", done["output"])
                    epochs_run = int(found.group(1)) if found else None
                if done["returncode"] != 0 or accuracy is None:
                    raise SystemExit(f"{side} seed {seed} failed:\n{done['output'][-3000:]}")
                row = {"seed": seed, "wall_s": done["wall_s"], "cpu_s": done["cpu_s"],
                       "peak_rss_mb": done["peak_rss_mb"], "test_accuracy": accuracy, "epochs": epochs_run}
                rows[side].append(row)
                print(f"seed {seed} {side:8s} wall {row['wall_s']:6.1f}s  cpu {row['cpu_s']:6.1f}s  "
                      f"epochs {epochs_run:2d}  test accuracy {accuracy:.4f}", flush=True)
    summary = {}
    for key in ("wall_s", "cpu_s"):
        ours_m, peer_m = median([r[key] for r in rows["cnnkeras"]]), median([r[key] for r in rows["peer"]])
        summary[key] = {"cnnkeras": ours_m, "peer": peer_m, "ratio": ours_m / peer_m}
        print(f"{key[:-2]:4s} seconds: cnnkeras/peer = {ours_m / peer_m:.2f}x (median {ours_m:.1f} vs {peer_m:.1f})")
    every_seed = all(r["test_accuracy"] >= TARGET for r in rows["cnnkeras"])
    met = every_seed and all(summary[k]["ratio"] <= 0.5 for k in ("wall_s", "cpu_s"))
    print(f"every cnnkeras seed >= {TARGET:.1%}: {every_seed}; goal (<= 0.5x wall and CPU): "
          f"{'met' if met else 'NOT met'}")
    save("time_to_accuracy", {"args": vars(args), "target": TARGET, "recipe": RECIPE.read_text(),
                              "runs": rows, "summary": summary, "every_seed_reached_target": every_seed,
                              "goal": 0.5, "met": met}, backend=args.backend)


if __name__ == "__main__":
    main()
