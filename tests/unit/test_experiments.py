"""Every experiment file users copy is valid, and mixed precision keeps a float32 head."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnkeras

from ..conftest import MNIST

ROOT = Path(__file__).resolve().parents[2] / "experiments"
EXPERIMENTS = sorted(ROOT.rglob("*.yaml"))  # findings/ too


def test_every_experiment_folder_is_collected():
    assert {p.parent.name for p in EXPERIMENTS} >= {"experiments", "findings"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_is_valid(path):
    if MNIST.exists() or "mnist" not in path.read_text(encoding="utf-8"):
        config = cnnkeras.validate(path)
    else:  # a checkout without ../shared/data/mnist.npz: every check but the data file's existence
        from cnnkeras.config import load_config
        from cnnkeras.config.checks import all_checks, check_data_paths

        config = load_config(path, checks=[c for c in all_checks() if c is not check_data_paths])
    assert config.name


def test_mixed_precision_run_keeps_a_float32_head(write_config):
    import keras

    path = write_config("""
        name: mp
        data: {source: digits, subset: 200, resize: [28, 28]}
        train: {epochs: 1, mixed_precision: true}
        tracking: {enabled: false}
        """)
    keras.config.set_dtype_policy("float32")
    result = cnnkeras.run(path, progress=False)
    assert result.model.get_layer("c1").compute_dtype == "float16"
    assert result.model.get_layer("predictions").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the run put the process's policy back
