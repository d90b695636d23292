"""What pictures of predictions cost a run: the same run with and without them, whole processes.

A run predicts its fixed picture sample (2,000 validation images at most) at each epoch that is
its best so far and logs a confusion matrix and the most confident mistakes at the end
(cnnkeras/training/predictions.py). Here ``cnnkeras run`` of LeNet-5 on an MNIST subset (or
digits when MNIST is not at ../shared/data/mnist.npz) runs with ``tracking.log_predictions``
true and false, alternating, and the medians of wall and CPU seconds are compared.

    .venv/bin/python benchmarks/predictions.py [--subset 20000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import MNIST, alternating, run_process, save

CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = (f"{{source: npz, path: {MNIST}, subset: {args.subset}, validation_split: 0.1}}" if MNIST.exists()
            else "{source: digits}")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "pictures.yaml"
        config.write_text(f"name: pictures\nseed: 0\ndata: {data}\nmodel: {{arch: lenet5}}\n"
                          f"train: {{epochs: {args.epochs}, batch_size: 128}}\n"
                          "tracking: {log_plots: false}\n")
        commands = {flag: [CNNKERAS, "run", str(config), "-q", f"tracking.log_predictions={flag}"]
                    for flag in ("false", "true")}
        warm = run_process(commands["true"] + ["train.epochs=1"], cwd=tmp)  # the file cache and the store
        if warm["returncode"] != 0:
            raise SystemExit(warm["output"])
        result = alternating(commands, args.repeats, cwd=tmp, label="log_predictions={name}")
    ratio = {k: result["true"][k] / result["false"][k] for k in ("wall_s", "cpu_s")}
    print(f"with pictures / without: {ratio['wall_s']:.3f}x wall, {ratio['cpu_s']:.3f}x CPU "
          f"(medians of {args.repeats}; {result['true']['wall_s']:.1f} s against {result['false']['wall_s']:.1f} s)")
    save("predictions", {"subset": args.subset if MNIST.exists() else "digits", "epochs": args.epochs,
                         "repeats": args.repeats, "medians": result, "ratio": ratio}, backend="tensorflow")


if __name__ == "__main__":
    main()
