"""The Keras backend is chosen per run (--backend or the config's backend key), before Keras loads.

Each run is a fresh ``cnnkeras`` process, as a user starts it: a process can hold only one
backend, and this test process runs on TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnkeras.backend import use_backend
from cnnkeras.errors import BackendError
from cnnkeras.tracking import download_artifact, iter_runs, read_run

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def cnnkeras(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, "-m", "cnnkeras.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**environment, **(env or {})})


@needs_jax
def test_backend_flag_runs_on_jax_caches_compiled_programs_and_reproduce_uses_it(tiny_config, tmp_path):
    done = cnnkeras("run", str(tiny_config), "train.epochs=2", "-q", "--backend", "jax", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = next(iter(iter_runs("tiny", uri=uri))).info.run_id
    logged = read_run(run_id, uri=uri)
    assert logged["tags"]["cnnkeras.backend"] == "jax"
    saved = yaml.safe_load(download_artifact(run_id, "config.yaml", tmp_path / "dl", uri=uri).read_text())
    assert saved["backend"] == "jax"  # the saved config reruns on the same backend
    cache = tmp_path / ".cnnkeras-cache" / "jax"
    assert cache.is_dir() and any(cache.iterdir()), "compiled programs are cached beside mlflow.db"

    again = cnnkeras("reproduce", run_id, cwd=tmp_path)  # no --backend: the run's own
    assert again.returncode == 0, again.stdout + again.stderr
    assert "match" in again.stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed here")
def test_a_backend_that_is_not_installed_is_one_line_before_anything_runs(tiny_config, tmp_path):
    done = cnnkeras("run", str(tiny_config), "--backend", "torch", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: the torch backend is not installed here (pip install torch)")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists(), "nothing is recorded for a run that cannot start"


def test_an_unknown_backend_is_a_config_error_naming_the_choices(tiny_config, tmp_path):
    done = cnnkeras("validate", str(tiny_config), "backend=jx", cwd=tmp_path)
    assert done.returncode == 2
    assert "backend" in done.stderr and "'jax'" in done.stderr


def test_a_process_that_already_loaded_keras_refuses_another_backend():
    import keras

    assert keras.backend.backend() == "tensorflow"
    assert use_backend(None) == "tensorflow"
    with pytest.raises(BackendError, match="already loaded with the tensorflow backend"):
        use_backend("jax")


def test_a_run_writes_nothing_to_stderr_no_native_tensorflow_lines(tiny_config, tmp_path):
    """TensorFlow's C++ start-up lines (oneDNN, cuInit, absl) are silenced while it loads; checking
    whether a backend is installed must not use up that one-time import hook."""
    done = cnnkeras("run", str(tiny_config), "train.epochs=1", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@needs_jax
def test_arrays_placed_on_the_device_train_exactly_as_arrays_fed_from_the_host(tiny_config, tmp_path):
    """On a GPU, JAX runs keep in-memory data on the device (no copy per batch); forced here on the
    CPU, the same batches in the same order give the same numbers."""
    finals = []
    for forced in ("0", "1"):
        done = cnnkeras("run", str(tiny_config), "train.epochs=2", "--backend", "jax", "tracking.enabled=false",
                        cwd=tmp_path, env={"CNNKERAS_DATA_ON_DEVICE": forced})
        assert done.returncode == 0, done.stderr
        finals.append([line for line in done.stdout.splitlines() if "val_" in line or "test_" in line])
    assert finals[0] == finals[1] and finals[0]
