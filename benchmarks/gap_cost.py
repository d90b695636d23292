"""What the clean gap costs: a whole run with the training sample evaluated every epoch, against the same run
with it switched off (``train.gap_sample=0``).

Whole processes, as a user feels them: ``cnnkeras run`` of ``experiments/mnist-99.yaml`` (full MNIST, 3
epochs: the sample is 6,000 training images, the validation split's size) and of
``experiments/quickstart.yaml`` (digits, 8 epochs, 288 images), tracking into an existing SQLite store.
Alternating order, ``--repeats`` pairs each; medians of wall and CPU seconds, and each run's own epoch
times (``epoch_time_s``, read from the run's history: the evaluation sits inside the epoch it measures).
Goal: the clean gap costs at most 10% of a run's time on both.

A shared machine moves wall times by more than 10% from one minute to the next, so a second
measure is taken inside one process, where load changes hit both parts alike: each epoch's
time (wall and process CPU) and the part of it spent in ``EpochMeasures`` evaluating the
sample. Saves ``results/gap_cost.json``.

    .venv/bin/python benchmarks/gap_cost.py [--repeats 3] [--only quickstart|mnist-99]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import MNIST, RESULTS, median, run_process, save

ROOT = Path(__file__).resolve().parents[1]
CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))
EXPERIMENTS = {"quickstart": ROOT / "experiments" / "quickstart.yaml", "mnist-99": ROOT / "experiments" / "mnist-99.yaml"}
GOAL = 1.10


def _epoch_times(uri: str, experiment: str) -> list[list[float]]:
    """Each run's epoch times, oldest run first, read from MLflow (an own process: no Keras here)."""
    code = ("import json, sys; from mlflow.tracking import MlflowClient; c = MlflowClient(sys.argv[1]); "
            "e = c.get_experiment_by_name(sys.argv[2]); runs = c.search_runs([e.experiment_id], "
            "order_by=['attributes.start_time ASC']); "
            "print(json.dumps([[m.value for m in sorted(c.get_metric_history(r.info.run_id, 'epoch_time_s'), "
            "key=lambda m: m.step)] for r in runs]))")
    done = run_process([sys.executable, "-c", code, uri, experiment])
    return json.loads(done["output"].strip().splitlines()[-1])


def measure(name: str, path: Path, repeats: int) -> dict:
    rows: dict[str, list[dict]] = {"clean_gap": [], "no_sample": []}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        experiment = f"gap-cost-{name}"
        base = [CNNKERAS, "run", str(path), "-q", f"tracking.uri={uri}", f"tracking.experiment={experiment}"]
        if name == "mnist-99":
            base.append(f"data.path={MNIST}")
        warm = run_process(base + ["train.epochs=1"] + (["data.subset=2000"] if name == "mnist-99" else []), cwd=tmp)
        if warm["returncode"] != 0:
            raise SystemExit(f"{name} failed:\n{warm['output'][-3000:]}")
        order = []
        for i in range(repeats):
            for side in (("clean_gap", "no_sample") if i % 2 == 0 else ("no_sample", "clean_gap")):
                done = run_process(base + (["train.gap_sample=0"] if side == "no_sample" else []), cwd=tmp)
                if done["returncode"] != 0:
                    raise SystemExit(f"{name} {side} failed:\n{done['output'][-3000:]}")
                rows[side].append({"wall_s": done["wall_s"], "cpu_s": done["cpu_s"]})
                order.append(side)
                print(f"{name:10s} {side:9s} wall {done['wall_s']:6.1f}s  cpu {done['cpu_s']:6.1f}s", flush=True)
        epochs = _epoch_times(uri, experiment)[1:]  # the warm-up run first
        per_side: dict[str, list[float]] = {"clean_gap": [], "no_sample": []}
        for side, times in zip(order, epochs):
            per_side[side].extend(times[1:])  # the first epoch traces and compiles: left out of the epoch medians
    summary = {}
    for key in ("wall_s", "cpu_s"):
        clean, off = median([r[key] for r in rows["clean_gap"]]), median([r[key] for r in rows["no_sample"]])
        summary[key] = {"clean_gap": clean, "no_sample": off, "ratio": clean / off}
    clean_epoch, off_epoch = median(per_side["clean_gap"]), median(per_side["no_sample"])
    summary["epoch_s"] = {"clean_gap": clean_epoch, "no_sample": off_epoch, "ratio": clean_epoch / off_epoch}
    for key, value in summary.items():
        print(f"{name:10s} {key[:-2]:5s}: clean gap / no sample = {value['ratio']:.3f}x "
              f"(median {value['clean_gap']:.2f} vs {value['no_sample']:.2f})", flush=True)
    return {"runs": rows, "epoch_times": per_side, "summary": summary,
            "met": all(summary[k]["ratio"] <= GOAL for k in ("wall_s", "cpu_s"))}


def share_in_process(name: str, path: Path) -> dict:
    """One run in this process: the share of each epoch's wall and CPU time spent evaluating the sample."""
    import time

    from cnnkeras.config import load_config
    from cnnkeras.runner import prepare
    from cnnkeras.training import callbacks as cb
    from cnnkeras.training.fit import fit_and_evaluate

    overrides = ["tracking.enabled=false"] + ([f"data.path={MNIST}"] if name == "mnist-99" else [])
    config = load_config(path, overrides)
    spent = {"wall": [], "cpu": []}
    epochs = {"wall": [], "cpu": []}
    original_end, original_begin = cb.EpochMeasures.on_epoch_end, cb.EpochMeasures.on_epoch_begin
    marks: dict[str, float] = {}

    def begin(self, epoch, logs=None):
        marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()
        return original_begin(self, epoch, logs)

    def end(self, epoch, logs=None):
        wall, cpu = time.perf_counter(), time.process_time()
        original_end(self, epoch, logs)
        spent["wall"].append(time.perf_counter() - wall)
        spent["cpu"].append(time.process_time() - cpu)
        epochs["wall"].append(time.perf_counter() - marks["wall"])
        epochs["cpu"].append(time.process_time() - marks["cpu"])

    cb.EpochMeasures.on_epoch_begin, cb.EpochMeasures.on_epoch_end = begin, end
    try:
        data, model = prepare(config)
        fit_and_evaluate(model, data, config, progress=False)
    finally:
        cb.EpochMeasures.on_epoch_begin, cb.EpochMeasures.on_epoch_end = original_begin, original_end
    # the first epoch traces the training and evaluation programs: shown apart
    out = {"sample": len(data.x_val), "epochs": epochs, "evaluation": spent,
           "share_wall": sum(spent["wall"][1:]) / sum(epochs["wall"][1:]),
           "share_cpu": sum(spent["cpu"][1:]) / sum(epochs["cpu"][1:]),
           "share_wall_first_epoch": spent["wall"][0] / epochs["wall"][0]}
    print(f"{name:10s} in one process: evaluating the sample takes {out['share_wall']:.1%} of each epoch's wall "
          f"time and {out['share_cpu']:.1%} of its CPU time (first epoch, tracing included: "
          f"{out['share_wall_first_epoch']:.1%})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=list(EXPERIMENTS))
    parser.add_argument("--in-process-only", action="store_true",
                        help="only the in-process shares, added to the last results/gap_cost.json")
    args = parser.parse_args()
    if args.in_process_only:
        saved = json.loads((RESULTS / "gap_cost.json").read_text())
        for name, path in EXPERIMENTS.items():
            if args.only in (None, name):
                saved["results"].setdefault(name, {})["in_process"] = share_in_process(name, path)
        save("gap_cost", {k: v for k, v in saved.items() if k not in ("benchmark", "machine", "time")},
             backend="tensorflow")
        return
    results = {name: measure(name, path, args.repeats) for name, path in EXPERIMENTS.items()
               if args.only in (None, name)}
    for name, path in EXPERIMENTS.items():
        if args.only in (None, name):
            results[name]["in_process"] = share_in_process(name, path)
    for name, result in results.items():
        print(f"{name}: goal (<= {GOAL:.2f}x wall and CPU seconds) {'met' if result['met'] else 'NOT met'}")
    save("gap_cost", {"args": vars(args), "goal": GOAL, "results": results}, backend="tensorflow")


if __name__ == "__main__":
    main()
