"""Sweep costs, each measured side by side in one run.

1. Orchestration overhead per trial: ``cnnkeras.sweep`` (journal storage, parent and
   child MLflow runs, tags, importances, plots) against a plain in-memory Optuna loop
   calling the same training function (``cnnkeras.run``, tracked the same way), same
   sampler seed and trials. Goal: at most 5% or 50 ms per trial, whichever is larger.
2. Memory: RSS after each of 30 trials of an in-process ``cnnkeras.sweep`` (tracked in
   MLflow), beside the same number of plain ``keras.backend.clear_session(); build; fit``
   loops, with and without ``cnnkeras``' graph release, and the sweep process's RSS over
   an ``isolation: process`` sweep, where each trial runs in a fresh worker. On
   TensorFlow a plain loop grows about 6 MB per fitted model (tensorflow/tensorflow#61791,
   keras-team/keras#20552): every trace registers a ``tf.custom_gradient`` (Keras'
   optimizer all-reduces its gradients through one) in TensorFlow's global gradient
   registry, which keeps the whole train-step graph alive;
   ``cnnkeras.training.graph_release`` drops those entries when a run ends. Goal: under
   3 MB of growth per trial.
3. Pruning: a 32-trial sweep with each pruner against the same sweep without pruning
   (a seeded random sampler, so both try the same configurations). Goal: best accuracy
   within 0.2 points using at most half the epochs.

    .venv/bin/python benchmarks/sweep.py [--trials 8] [--prune-trials 32]
    KERAS_BACKEND=jax python benchmarks/sweep.py --only plain-memory   # the plain loop on another backend
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import save

import cnnkeras

MODEL = {"arch": "sequential", "layers": [
    {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "max_pool", "pool_size": 2},
    {"type": "dense", "units": 64, "activation": "relu"}]}
SPACE = {
    "train.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "train.batch_size": {"type": "categorical", "choices": [16, 32, 64]},
}


def base(tmp: Path, *, epochs: int, search: dict | None, tracking: bool = True) -> dict:
    raw = {"name": "bench", "seed": 11, "data": {"source": "digits"}, "model": MODEL,
           "train": {"epochs": epochs, "batch_size": 32},
           "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}", "enabled": tracking, "log_plots": False,
                        "log_model": False}}
    if search is not None:
        raw["search"] = {"storage": str(tmp / "study.journal"), **search}
    return raw


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def overhead(tmp: Path, trials: int, epochs: int) -> dict:
    """Plain Optuna loop vs ``cnnkeras.sweep`` on the same trials, in ABBA order.

    Every block runs the same seeded TPE trials. The order plain, cnnkeras, cnnkeras, plain
    cancels a linear drift of the process (graph caches and memory grow with every model
    fitted), which otherwise makes whichever runs second look slower.
    """
    import optuna

    from cnnkeras.studies.space import trial_overrides
    from cnnkeras.studies.study import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = {"n_trials": trials, "parameters": SPACE, "pruner": {"name": "none"}, "sampler": {"name": "tpe"}}
    params = cnnkeras.config_from_dict(base(tmp / "w", epochs=epochs, search=search)).search.parameters

    def plain_block(folder: Path) -> tuple[float, float]:
        folder.mkdir()
        raw = base(folder, epochs=epochs, search=None)

        def objective(trial):
            result = cnnkeras.run(cnnkeras.config_from_dict(raw, trial_overrides(trial, params)), progress=False)
            return result.summary["best_val_accuracy"]

        start = time.perf_counter()
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=11))
        study.optimize(objective, n_trials=trials)
        return time.perf_counter() - start, sum(t.duration.total_seconds() for t in study.trials)

    def our_block(folder: Path) -> tuple[float, float]:
        folder.mkdir()
        config = cnnkeras.config_from_dict(base(folder, epochs=epochs, search=search))
        start = time.perf_counter()
        cnnkeras.sweep(config, progress=False)
        wall = time.perf_counter() - start
        return wall, sum(t.duration.total_seconds() for t in load_study(config).trials)

    # warm-up outside the timings: imports, first graph tracing, an MLflow store created
    (tmp / "warm").mkdir()
    cnnkeras.run(cnnkeras.config_from_dict(base(tmp / "warm", epochs=epochs, search=None)), progress=False)
    blocks = [("plain", plain_block(tmp / "plain1")), ("ours", our_block(tmp / "ours1")),
              ("ours", our_block(tmp / "ours2")), ("plain", plain_block(tmp / "plain2"))]
    plain = sum(b[1][0] for b in blocks if b[0] == "plain")
    ours = sum(b[1][0] for b in blocks if b[0] == "ours")
    # Split the wall time: what each trial costs (Optuna's own start/complete stamps) and
    # what a sweep costs once (study and parent run, then importances, plots, artifacts).
    plain_trials = sum(b[1][1] for b in blocks if b[0] == "plain")
    our_trials = sum(b[1][1] for b in blocks if b[0] == "ours")
    n = 2 * trials
    per_trial = (our_trials - plain_trials) / n
    allowed = max(0.05 * plain_trials / n, 0.05)
    return {"trials_per_block": trials, "order": [b[0] for b in blocks],
            "blocks_s": [{"kind": b[0], "wall_s": b[1][0], "trials_s": b[1][1]} for b in blocks],
            "plain_s": plain, "cnnkeras_s": ours, "plain_trials_s": plain_trials, "cnnkeras_trials_s": our_trials,
            "overhead_per_trial_s": per_trial, "overhead_fraction_per_trial": our_trials / plain_trials - 1,
            "fixed_per_sweep_s": ((ours - our_trials) - (plain - plain_trials)) / 2,
            "overhead_fraction_total": ours / plain - 1, "allowed_per_trial_s": allowed, "met": per_trial <= allowed}


def _slope(values: list[float]) -> float:
    tail = values[-20:]
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])


def _plain_keras_loop(trials: int, *, release: bool = False) -> list[float]:
    """RSS after each ``clear_session(); build; fit`` (optionally inside the graph release)."""
    from contextlib import nullcontext

    import keras
    from sklearn.datasets import load_digits

    from cnnkeras.training.graph_release import release_traced_graphs

    digits = load_digits()
    x, y = digits.images[..., None].astype("float32") / 16, digits.target
    values = []
    for i in range(trials):
        with release_traced_graphs() if release else nullcontext():
            keras.backend.clear_session()
            keras.utils.set_random_seed(i)
            model = keras.Sequential([keras.Input((8, 8, 1)),
                                      keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                                      keras.layers.MaxPooling2D(2), keras.layers.Dense(64, activation="relu"),
                                      keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(x[:1400], y[:1400], validation_data=(x[1400:], y[1400:]), epochs=1, verbose=0)
            model.evaluate(x[1400:], y[1400:], verbose=0)
            del model
        values.append(rss_mb())
    return values


def _sweep_rss(folder: Path, trials: int, isolation: str) -> list[float]:
    """The sweep process's RSS as each trial of a real ``cnnkeras.sweep`` ends."""
    import optuna

    folder.mkdir()
    values: list[float] = []
    search = {"n_trials": trials, "parameters": SPACE, "pruner": {"name": "none"}, "isolation": isolation}
    config = cnnkeras.config_from_dict(base(folder, epochs=1, search=search))
    original = optuna.Study.optimize

    def optimize(self, func, *args, **kwargs):  # record RSS as each trial ends
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), lambda study, trial: values.append(rss_mb())]
        return original(self, func, *args, **kwargs)

    optuna.Study.optimize = optimize
    try:
        cnnkeras.sweep(config, progress=False)
    finally:
        optuna.Study.optimize = original
    return values


def plain_memory(trials: int) -> dict:
    """The plain Keras loop's RSS without and with the graph release (any backend, no MLflow)."""
    plain = _plain_keras_loop(trials)
    released = _plain_keras_loop(trials, release=True)
    return {"plain_keras_rss_mb": plain, "plain_keras_released_rss_mb": released,
            "plain_keras_mb_per_trial": _slope(plain), "plain_keras_released_mb_per_trial": _slope(released)}


def memory(tmp: Path, trials: int, isolated_trials: int) -> dict:
    ours = _sweep_rss(tmp / "in-process", trials, "none")
    plain = plain_memory(trials)
    isolated = _sweep_rss(tmp / "isolated", isolated_trials, "process")
    out = {"in_process_rss_mb": ours, **plain, "isolated_sweep_rss_mb": isolated,
           "in_process_mb_per_trial": _slope(ours), "isolated_mb_per_trial": _slope(isolated)}
    out["in_process_met"] = out["in_process_mb_per_trial"] < 3.0
    out["isolated_met"] = out["isolated_mb_per_trial"] < 3.0
    out["met"] = out["in_process_met"] and out["isolated_met"]
    return out


PRUNERS = {
    "median": {"name": "median", "warmup_epochs": 2, "startup_trials": 5},
    "successive_halving": {"name": "successive_halving", "warmup_epochs": 1},
    "hyperband": {"name": "hyperband", "warmup_epochs": 1},
}


def _pruning_sweep(folder: Path, trials: int, epochs: int, pruner: dict) -> dict:
    folder.mkdir()
    # A random sampler draws the same configurations whatever the pruner does, so both
    # sweeps try the same trials and only the pruning differs.
    search = {"n_trials": trials, "parameters": SPACE, "pruner": pruner, "sampler": {"name": "random", "seed": 3}}
    config = cnnkeras.config_from_dict(base(folder, epochs=epochs, search=search, tracking=False))
    start = time.perf_counter()
    result = cnnkeras.sweep(config, progress=False)
    epochs_run = sum(int(t["user_attrs"].get("summary", {}).get("epochs_run", 0)) for t in result.trials)
    return {"best": result.best[0]["values"][0], "epochs": epochs_run, "wall_s": time.perf_counter() - start,
            "counts": result.counts()}


def pruning(tmp: Path, trials: int, epochs: int, pruner_names: list[str]) -> dict:
    unpruned = _pruning_sweep(tmp / "unpruned", trials, epochs, {"name": "none"})
    print(f"  unpruned            best {unpruned['best']:.4f}  epochs {unpruned['epochs']}")
    out: dict = {"unpruned": unpruned, "pruners": {}}
    for name in pruner_names:
        run = _pruning_sweep(tmp / name, trials, epochs, PRUNERS[name])
        run["best_difference_points"] = 100 * (unpruned["best"] - run["best"])
        run["epoch_ratio"] = run["epochs"] / unpruned["epochs"]
        run["met"] = run["best_difference_points"] <= 0.2 and run["epoch_ratio"] <= 0.5
        out["pruners"][name] = run
        print(f"  {name:19s} best {run['best']:.4f}  epochs {run['epochs']} ({run['epoch_ratio']:.0%}), "
              f"best differs by {run['best_difference_points']:.2f} points: {'met' if run['met'] else 'NOT met'}"
              f"  {run['counts']}")
    out["met"] = any(r["met"] for r in out["pruners"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--memory-trials", type=int, default=30)
    parser.add_argument("--isolated-trials", type=int, default=10)
    parser.add_argument("--prune-trials", type=int, default=32)
    parser.add_argument("--prune-epochs", type=int, default=8)
    parser.add_argument("--pruners", default="median,hyperband,successive_halving",
                        help="Comma-separated pruners to compare with the unpruned sweep.")
    parser.add_argument("--only", choices=("overhead", "memory", "pruning", "plain-memory"),
                        help="Run one part only. plain-memory: only the plain Keras loop (any backend, no MLflow).")
    args = parser.parse_args()
    o = m = p = None
    if args.only == "plain-memory":
        import keras

        m = plain_memory(args.memory_trials)
        print(f"  plain Keras loop on {keras.backend.backend()}: {m['plain_keras_mb_per_trial']:.2f} MB/trial, "
              f"{m['plain_keras_released_mb_per_trial']:.2f} with the graph release")
        save(f"sweep-memory-plain-{keras.backend.backend()}", {"args": vars(args), "memory": m})
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "overhead"):
            print("1. orchestration overhead")
            o = overhead(tmp, args.trials, args.epochs)
            print(f"  plain Optuna loop {o['plain_s']:.1f}s, cnnkeras sweep {o['cnnkeras_s']:.1f}s: "
              f"{o['overhead_per_trial_s'] * 1000:.0f} ms/trial ({o['overhead_fraction_per_trial']:+.1%} per trial; "
              f"allowed {o['allowed_per_trial_s'] * 1000:.0f} ms: {'met' if o['met'] else 'NOT met'}), plus "
              f"{o['fixed_per_sweep_s']:.1f} s once per sweep (study, parent run, importances, plots)")
        if args.only in (None, "memory"):
            print("2. memory over in-process trials")
            m = memory(tmp, args.memory_trials, args.isolated_trials)
            print(f"  in-process sweep: {m['in_process_mb_per_trial']:.2f} MB/trial "
                  f"({'met' if m['in_process_met'] else 'NOT met'}); isolation: process sweep: "
                  f"{m['isolated_mb_per_trial']:.2f} MB/trial ({'met' if m['isolated_met'] else 'NOT met'}); "
                  f"plain Keras loop: {m['plain_keras_mb_per_trial']:.2f} MB/trial, "
                  f"{m['plain_keras_released_mb_per_trial']:.2f} with the graph release")
        if args.only in (None, "pruning"):
            print("3. pruning efficiency")
            p = pruning(tmp, args.prune_trials, args.prune_epochs, args.pruners.split(","))
    name = "sweep" if args.only is None else f"sweep-{args.only}"
    save(name, {"args": vars(args), "overhead": o, "memory": m, "pruning": p})


if __name__ == "__main__":
    main()
