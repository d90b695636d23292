"""How many finished trials fANOVA needs before its ranking can be trusted (the rule in studies/importance.py).

A simulation, no training: p parameters drawn uniformly in [0, 1], one of them (x0)
with a real effect (``y = x0 + noise``, noise std 1/3: the effect's spread and the
noise's about equal, as between a learning rate and seed-to-seed noise in a small
sweep), the others none. For each p and number of trials n, ``--repeats`` studies are
ranked by Optuna's fANOVA (seed 0, as cnnkeras does); the result is how often x0 comes
first (chance: 1/p) and its mean importance. Saves ``results/importance_min_trials.json``.

    .venv/bin/python benchmarks/importance_min_trials.py [--repeats 60]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import optuna
from common import save
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import create_trial

from cnnkeras.studies.importance import min_trials


def first_is_right(rng: np.random.Generator, n: int, p: int, noise: float) -> tuple[bool, float]:
    distributions = {f"x{i}": FloatDistribution(0, 1) for i in range(p)}
    x = rng.random((n, p))
    y = x[:, 0] + rng.normal(0, noise, n)
    study = optuna.create_study()
    study.add_trials([create_trial(params={f"x{i}": float(x[j, i]) for i in range(p)},
                                   distributions=distributions, value=float(y[j])) for j in range(n)])
    found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return max(found, key=found.get) == "x0", float(found["x0"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--noise", type=float, default=1 / 3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    rows = []
    for p in (2, 3, 4, 5):
        for n in sorted({4, 6, 8, 10, 12, 16, 24, min_trials(p)}):
            results = [first_is_right(rng, n, p, args.noise) for _ in range(args.repeats)]
            row = {"parameters": p, "trials": n, "first_right": float(np.mean([r for r, _ in results])),
                   "importance_of_x0": float(np.mean([i for _, i in results])), "chance": 1 / p,
                   "rule": min_trials(p)}
            rows.append(row)
            mark = "  <- the rule" if n == min_trials(p) else ""
            print(f"p={p} n={n:>2}: x0 first in {row['first_right']:.0%} (chance {1 / p:.0%}), "
                  f"mean importance {row['importance_of_x0']:.2f}{mark}", flush=True)
    save("importance_min_trials", {"repeats": args.repeats, "noise_std": args.noise, "rows": rows}, backend="none")


if __name__ == "__main__":
    main()
