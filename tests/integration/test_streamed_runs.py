"""Streamed data in sweeps and cohorts (issue 27): one decode for every trial, cohorts on streamed batches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cnnkeras
from cnnkeras.cohort import group_by_cohort, run_cohort
from cnnkeras.data.cache import LOG

from ..conftest import SWEEP_MODEL, TINY_MODEL
from ..unit.test_streaming import class_folder

pytestmark = pytest.mark.slow  # sweeps and cohorts that train


def _sweep_file(tmp_path: Path, root: Path, *, cohort: int | None = None) -> Path:
    path = tmp_path / "sw.yaml"
    path.write_text(textwrap.dedent(f"""
        name: sw
        seed: 5
        data: {{source: image_folder, path: {root}, color_mode: rgb, storage: stream}}
        train: {{epochs: 2, batch_size: 16, optimizer: {{name: adam}}}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}", log_plots: false, log_model: false}}
        search:
          n_trials: 4
          pruner: {{name: none}}
          {f'cohort: {cohort}' if cohort else ''}
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
        """) + SWEEP_MODEL)
    return path


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sweep_on_a_streamed_folder_decodes_it_once(tmp_path, data_cache, jobs):
    """Four trials (in this process, or in two worker processes at once): one decode, one entry."""
    root = class_folder(tmp_path / "imgs", per_class=40)
    path = _sweep_file(tmp_path, root)
    result = cnnkeras.sweep(str(path), jobs=jobs, progress=False)
    assert result.counts() == {"COMPLETE": 4}
    decodes = (data_cache / LOG).read_text().splitlines()
    assert len(decodes) == 1, decodes
    entries = [p for p in data_cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sw").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    assert {r.data.params["data.storage_used"] for r in children} == {"stream"}
    assert {r.data.params["data.cache_entry"] for r in children} == {str(entries[0])}


def test_a_cohort_on_streamed_data_matches_each_run_alone(tmp_path, write_config, tracking_uri):
    """A cohort's members see the streamed batches their runs alone see: the same metrics."""
    root = class_folder(tmp_path / "imgs", per_class=30)
    path = write_config(f"""
        name: co
        seed: 3
        data: {{source: image_folder, path: {root}, color_mode: rgb, storage: stream}}
        train: {{epochs: 2, batch_size: 16, optimizer: {{name: adam, learning_rate: 0.003}}}}
        tracking: {{log_plots: false, log_model: false}}
        """, TINY_MODEL)
    configs = [cnnkeras.load_config(path, o) for o in ([], ["train.optimizer.learning_rate=0.01"],
                                                       ["train.l2=0.001"])]
    assert len(group_by_cohort(configs)) == 1
    together = run_cohort(configs, progress=False)
    for config, member in zip(configs, together):
        alone = cnnkeras.run(config, progress=False)
        assert not isinstance(member, Exception), member
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            for a, b in zip(alone.history[key], member.history[key]):
                assert abs(a - b) <= (1e-3 * abs(a) if "loss" in key else 1e-4), (key, alone.history[key],
                                                                                   member.history[key])
        assert abs(alone.summary["test_accuracy"] - member.summary["test_accuracy"]) <= 1e-4


def test_a_cohort_sweep_on_streamed_data_decodes_once(tmp_path, data_cache):
    root = class_folder(tmp_path / "imgs", per_class=30)
    result = cnnkeras.sweep(str(_sweep_file(tmp_path, root, cohort=2)), progress=False)
    assert result.counts() == {"COMPLETE": 4}
    assert len((data_cache / LOG).read_text().splitlines()) == 1


@pytest.mark.skipif(subprocess.run([sys.executable, "-c", "import jax"], capture_output=True).returncode != 0,
                    reason="JAX is not installed")
def test_streamed_and_in_memory_training_match_on_jax_too(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow",
                           "tests/unit/test_streaming.py::test_training_on_a_streamed_folder_is_the_in_memory_training"],
                          env=env, capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
