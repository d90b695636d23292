"""Seeds and the environment a run happened in.

:func:`seed_everything` seeds Python, NumPy and the Keras backend through
``keras.utils.set_random_seed``; on the same CPU machine, the same config and
seed then give bit-identical metrics for NumPy inputs. :func:`environment`
records what a reader needs to reproduce a run: package versions, backend,
Python, platform and the git commit of the experiment's folder and of cnnkeras.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["environment", "git_commit", "seed_everything"]

PACKAGES = ("cnnkeras", "keras", "tensorflow", "jax", "jaxlib", "torch", "numpy", "mlflow", "optuna",
            "optuna-integration", "pandas", "pydantic", "scikit-learn", "plotly")


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed every random generator a run uses; optionally ask for deterministic ops."""
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def git_commit(folder: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """``{'commit': sha, 'dirty': bool}`` of the git checkout holding ``folder``, or None."""
    cwd = str(folder or os.getcwd())
    if not os.path.isdir(cwd):
        cwd = str(Path(cwd).parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=5)
        return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment(config_file: str | None = None) -> dict[str, Any]:
    """Versions, backend, machine and git state, as a JSON-able dict."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "packages": versions,
        "git": {
            "experiment": git_commit(Path(config_file).parent if config_file else None),
            "cnnkeras": git_commit(Path(__file__).resolve().parent),
        },
    }


def _devices() -> list[str]:
    try:
        if keras.backend.backend() == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_logical_devices()]
        if keras.backend.backend() == "torch":
            import torch

            return ["cuda"] * torch.cuda.device_count() or ["cpu"]
    except Exception:  # a device query must never fail a run
        pass
    return []
