"""Trials per hour of a sweep trained in cohorts (issues 15 and 24), side by side in one run.

The same 32 seeded trials (LeNet-5 on 20,000 MNIST images from ../shared/data/mnist.npz,
3 epochs, batch 128, learning rate, L2 and dropout sampled by a seeded random sampler,
so every run tries the same values; no pruning, so every trial trains its 3 epochs) as
whole ``cnnkeras sweep`` processes, tracked in MLflow (SQLite) like a user's sweep:

- ``search.cohort`` 1 (one trial at a time), 8, 16 and 32, each size fixed
  (``cohort_probe: false``);
- ``auto``: ``cohort: --auto-largest`` with the size chosen as the sweep runs, from whole
  trials timed (what a user gets by default; the exploration's trials count in its time).

For each: trials per hour, wall and CPU seconds (the sweep process and its children),
peak RSS, the best validation accuracy found and how far every trial's objective is
from the same trial with cohort 1. Issue 15's goal on the 2-core CPU: the best size at
least 2x the trials per hour of cohort 1, with the same best trial. Issue 24's check,
printed and saved as ``auto_not_slower``: ``auto`` is never slower than one at a time
(its trials per hour at least 0.95x cohort 1's, 5% being this shared machine's noise);
run it on both CPU backends (``--backend jax``, ``--backend tensorflow``).

    .venv/bin/python benchmarks/cohorts.py [--sizes 1 auto] [--trials 32] [--backend jax]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import yaml
from common import MNIST, run_process, save

CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))


def config(tmp: Path, *, trials: int, cohort: int, probe: bool, subset: int, epochs: int) -> dict:
    return {
        "name": "cohorts", "seed": 7,
        "data": {"source": "npz", "path": str(MNIST), "subset": subset, "validation_split": 0.1},
        "model": {"arch": "lenet5"},
        "train": {"epochs": epochs, "batch_size": 128, "optimizer": {"name": "adam", "learning_rate": 1e-3}},
        "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}", "log_model": True, "log_plots": False},
        "search": {
            "n_trials": trials, "cohort": cohort, "cohort_probe": probe,
            "storage": str(tmp / "study.journal"),
            "sampler": {"name": "random", "seed": 3}, "pruner": {"name": "none"},
            "objectives": [{"metric": "best_val_accuracy", "direction": "maximize"}],
            "parameters": {
                "train.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "train.l2": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
                "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
            },
        },
    }


def trial_values(journal: Path) -> dict[int, float | None]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="cohorts", storage=storage)
    return {t.number: (t.value if t.state.name == "COMPLETE" else None) for t in study.trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1", "8", "16", "32", "auto"])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--auto-largest", type=int, default=8, help="search.cohort of the auto row")
    args = parser.parse_args()
    if not MNIST.exists():
        raise SystemExit(f"needs {MNIST}")
    rows = []
    baseline: dict[int, float | None] = {}
    for size in args.sizes:
        cohort, probe = (args.auto_largest, True) if size == "auto" else (int(size), False)
        with tempfile.TemporaryDirectory(prefix="cnnkeras-bench-cohorts-") as tmp:
            path = Path(tmp) / "sweep.yaml"
            path.write_text(yaml.safe_dump(config(Path(tmp), trials=args.trials, cohort=cohort, probe=probe,
                                                  subset=args.subset, epochs=args.epochs)))
            measured = run_process([CNNKERAS, "sweep", str(path), "-q"], cwd=tmp,
                                   env={"KERAS_BACKEND": args.backend})
            if measured["returncode"] != 0:
                print(measured["output"][-3000:])
                raise SystemExit(f"cohort {size}: the sweep failed")
            values = trial_values(Path(tmp) / "study.journal")
        found = re.search(r"cohorts[^()]*\(measured per trial:[^)]*\)", " ".join(measured["output"].split()))
        chosen = found.group(0) if found else ""
        if not baseline:
            baseline = values
        differences = [abs(v - baseline[n]) for n, v in values.items()
                       if v is not None and baseline.get(n) is not None]
        best = max((v for v in values.values() if v is not None), default=float("nan"))
        best_trial = max((n for n, v in values.items() if v is not None), key=lambda n: values[n], default=None)
        row = {"cohort": size, "wall_s": measured["wall_s"], "cpu_s": measured["cpu_s"],
               "peak_rss_mb": measured["peak_rss_mb"], "trials": len(values),
               "trials_per_hour": 3600 * len(values) / measured["wall_s"], "best_value": best,
               "best_trial": best_trial, "max_objective_difference": max(differences, default=None),
               "probe": chosen}
        rows.append(row)
        ratio = row["trials_per_hour"] / rows[0]["trials_per_hour"]
        print(f"cohort {size:>4}: {row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} CPU s, "
              f"{row['peak_rss_mb']:6.0f} MB, {row['trials_per_hour']:6.0f} trials/h ({ratio:.2f}x cohort 1), "
              f"best {best:.4f} (trial {best_trial}), largest difference to cohort 1 "
              f"{row['max_objective_difference']}  {chosen}", flush=True)
    result: dict = {"args": vars(args), "rows": rows}
    auto = next((r for r in rows if r["cohort"] == "auto"), None)
    one = next((r for r in rows if r["cohort"] == "1"), None)
    if auto is not None and one is not None:
        ratio = auto["trials_per_hour"] / one["trials_per_hour"]
        result["auto_vs_one"] = ratio
        result["auto_not_slower"] = ratio >= 0.95
        print(f"auto ({auto['probe'] or 'no line'}): {ratio:.2f}x the trials per hour of one at a time: "
              f"{'not slower' if ratio >= 0.95 else 'SLOWER'}", flush=True)
    save(f"cohorts_{args.backend}_cpu", result, backend=args.backend)


if __name__ == "__main__":
    main()
