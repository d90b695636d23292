"""A study is one experiment (issue 25): a sweep that differs from the study it would join is refused in
one line naming the keys, before any trial; ``--join-anyway`` joins, says so and records it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import cnnkeras
from cnnkeras.studies.identity import StudyMismatch, differences
from cnnkeras.studies.study import load_study

from ..conftest import SWEEP_MODEL

pytestmark = pytest.mark.slow  # one trial trains


SEARCH = """
    search:
      n_trials: 1
      pruner: {name: none}
      parameters:
        train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
    """


def _file(tmp_path, name: str, extra: str = "", search: str = SEARCH) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        name: shared
        seed: 5
        data: {{source: digits, subset: 300}}
        train: {{epochs: 1, batch_size: 32}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}"}}
        """) + SWEEP_MODEL + textwrap.dedent(search) + textwrap.dedent(extra))
    return str(path)


def test_another_experiment_or_search_space_is_refused_and_join_anyway_is_recorded(tmp_path):
    first = _file(tmp_path, "first.yaml")
    cnnkeras.sweep(first, progress=False)
    same_but_bigger = cnnkeras.sweep(first, ["search.n_trials=2", "search.jobs=1", "tracking.log_plots=false"],
                                     progress=False)  # how much and where: the same experiment
    assert len(same_but_bigger.trials) == 2

    other = _file(tmp_path, "other.yaml", search=SEARCH.replace(
        "log: true}", "log: true}\n        model.layers.0.filters: {type: categorical, choices: [4, 8]}"))
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", first, "train.batch_size=64",
                           "search.n_trials=3"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output, output
    assert "study shared was made by another experiment: train.batch_size (study: 32, this sweep: 64)" in \
        " ".join(output.split())
    assert "--join-anyway" in output
    assert len(load_study(cnnkeras.load_config(first)).trials) == 2  # nothing ran

    with pytest.raises(StudyMismatch, match="search.parameters.model.layers.0.filters"):
        cnnkeras.sweep(other, ["search.n_trials=3"], progress=False)  # a worker with one extra search parameter

    joined = cnnkeras.sweep(first, ["train.batch_size=64", "search.n_trials=3", "search.join=any"], progress=False)
    last = joined.trials[-1]
    assert last["state"] == "COMPLETE"
    assert last["user_attrs"]["joined_with"] == "train.batch_size (study: 32, this sweep: 64)"


def test_what_does_not_change_a_trial_is_not_compared():
    base = cnnkeras.config_from_dict({"name": "x", "data": {"source": "npz", "path": "/a/mnist.npz"},
                                      "search": {"parameters": {"seed": {"type": "int", "low": 0, "high": 3}}}})
    moved = cnnkeras.config_from_dict({
        "name": "x", "description": "on the GPU box", "backend": "jax", "data": {"source": "npz", "path":
                                                                                  "/b/data/mnist.npz"},
        "tracking": {"uri": "http://mlflow:5001", "log_plots": False},
        "search": {"parameters": {"seed": {"type": "int", "low": 0, "high": 3}}, "n_trials": 99, "jobs": 4,
                   "storage": "postgresql+psycopg://u:pw@db/optuna", "cohort": 8, "isolation": "process"}})
    assert differences(base.to_dict(), moved) == []
    changed = cnnkeras.config_from_dict({**moved.to_dict(), "data": {"source": "npz", "path": "/b/fashion.npz"}})
    assert differences(base.to_dict(), changed) == ["data.path (study: mnist.npz, this sweep: fashion.npz)"]
