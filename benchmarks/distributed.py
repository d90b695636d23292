"""Distributed sweeps on PostgreSQL, measured in one run on this machine.

1. Throughput: the same small sweep (digits, a tiny CNN, 2 epochs per trial, tracking off
   so only the study is shared) run by 1, 2 and 4 ``cnnkeras sweep`` processes on one
   PostgreSQL study, each set-up on a fresh database. Reported: trials per minute from
   the first process's start to the last one's end (imports included, as a user waits for
   them), the CPU seconds of all processes, and the distinct parameter settings drawn.
2. Storage overhead per trial: the storage calls one cnnkeras trial makes (ask, four user
   attributes, one intermediate value per epoch, tell) with a no-op objective, on the
   PostgreSQL storage (ResilientRDBStorage, heartbeats on) against the journal file,
   alternating blocks; medians of the per-trial times.

    .venv/bin/python benchmarks/distributed.py [--trials 12] [--storage-trials 100]

Needs Debian's postgresql (initdb, pg_ctl), as the served-stack tests do.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import SWEEP_MODEL  # noqa: E402  (the sweep tests' model)
from tests.servers import PostgresCluster  # noqa: E402  (the same real PostgreSQL as the tests)

SWEEP = """
name: dist
seed: 5
data: {source: digits, subset: 500}
train: {epochs: 2, batch_size: 32, optimizer: {name: adam}}
tracking: {enabled: false}
""" + SWEEP_MODEL.strip("\n") + """
search:
  n_trials: TRIALS
  pruner: {name: none}
  storage: "STORAGE"
  parameters:
    train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
    train.l2: {type: float, low: 1.0e-6, high: 1.0e-3, log: true}
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def throughput(cluster: PostgresCluster, processes: int, trials: int, folder: Path) -> dict:
    import optuna

    database = f"dist{processes}"
    cluster.create_database(database)
    storage = cluster.url(database)
    config = folder / f"dist{processes}.yaml"
    config.write_text(textwrap.dedent(SWEEP).replace("TRIALS", str(trials)).replace("STORAGE", storage))
    command = [sys.executable, "-m", "cnnkeras.cli", "sweep", str(config), "-q"]
    cpu_before, started = children_cpu(), time.perf_counter()
    running = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    errors = [p.communicate()[1] for p in running]
    wall = time.perf_counter() - started
    if any(p.returncode for p in running):
        raise SystemExit("a sweep process failed:\n" + "\n".join(e[-2000:] for e in errors))
    study = optuna.load_study(study_name="dist", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    return {"processes": processes, "trials_complete": len(complete), "wall_s": round(wall, 2),
            "cpu_s": round(children_cpu() - cpu_before, 2), "trials_per_minute": round(60 * len(complete) / wall, 2),
            "distinct_settings": len({tuple(sorted(t.params.items())) for t in complete})}


def storage_trial_times(storage, trials: int, epochs: int = 2) -> list[float]:
    """Per-trial seconds of the storage calls a cnnkeras trial makes, with nothing trained."""
    import optuna

    study = optuna.create_study(study_name=f"ops-{time.time_ns()}", storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    times: list[float] = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        learning_rate = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for key, value in (("worker", 0), ("sampler_seed", 5), ("mlflow_run_id", "r" * 32)):
            trial.set_user_attr(key, value)
        for epoch in range(1, epochs + 1):
            trial.report(learning_rate, epoch)
        trial.set_user_attr("summary", {"best_val_accuracy": 0.9, "final_gap_accuracy": 0.01})
        study.tell(trial, learning_rate)
        times.append(time.perf_counter() - start)
    return times


def storage_overhead(cluster: PostgresCluster, trials: int, folder: Path, blocks: int = 4) -> dict:
    import optuna

    from cnnkeras.studies.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cluster.create_database("ops")
    rdb = open_storage(cluster.url("ops"))
    journal = open_storage(str(folder / "ops.journal"))
    per = {"postgresql": [], "journal": []}
    storage_trial_times(rdb, 5)  # warm-up: tables, connections
    storage_trial_times(journal, 5)
    for block in range(blocks):  # alternating blocks, so drifts in machine load hit both
        order = [("postgresql", rdb), ("journal", journal)]
        for name, storage in (order if block % 2 == 0 else order[::-1]):
            per[name] += storage_trial_times(storage, trials // blocks)
    medians = {name: statistics.median(values) * 1000 for name, values in per.items()}
    return {"trials_each": len(per["journal"]), "median_ms_per_trial": {k: round(v, 2) for k, v in medians.items()},
            "rdb_overhead_ms_per_trial": round(medians["postgresql"] - medians["journal"], 2),
            "ratio": round(medians["postgresql"] / medians["journal"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="Trials of the shared sweep, for each process count.")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--storage-trials", type=int, default=100)
    args = parser.parse_args()
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    cluster = PostgresCluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows = []
            for processes in args.processes:
                row = throughput(cluster, processes, args.trials, folder)
                rows.append(row)
                print(f"{processes} process(es): {row['trials_complete']} trials in {row['wall_s']:.0f} s "
                      f"({row['trials_per_minute']:.1f}/min, {row['cpu_s']:.0f} CPU s, "
                      f"{row['distinct_settings']} distinct settings)", flush=True)
            overhead = storage_overhead(cluster, args.storage_trials, folder)
            print(f"storage per trial: PostgreSQL {overhead['median_ms_per_trial']['postgresql']:.1f} ms, journal "
                  f"{overhead['median_ms_per_trial']['journal']:.1f} ms: {overhead['rdb_overhead_ms_per_trial']:+.1f} "
                  f"ms ({overhead['ratio']:.2f}x)", flush=True)
    finally:
        cluster.destroy()
    base = rows[0]["trials_per_minute"]
    for row in rows:
        row["speedup_vs_1"] = round(row["trials_per_minute"] / base, 2)
    save("distributed", {"command": "benchmarks/distributed.py " + " ".join(sys.argv[1:]), "throughput": rows,
                         "storage_overhead": overhead,
                         "note": "2-core shared VM; 4 processes oversubscribe the cores (each trains with TF)"})


if __name__ == "__main__":
    main()
