"""cnnkeras: declarative CNN experiments on Keras 3, tracked in MLflow, swept with Optuna.

The public API (each also a CLI command)::

    import cnnkeras
    config = cnnkeras.load_config("experiments/quickstart.yaml", ["train.epochs=3"])
    result = cnnkeras.run(config)
    print(result.summary["test_accuracy"], result.run_id)
    cnnkeras.reproduce(result.run_id)

Heavy dependencies (Keras, MLflow, Optuna, plotly) load on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Quiet TensorFlow's C++ start-up logging unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    "CnnkerasError": "cnnkeras.errors",
    "ConfigError": "cnnkeras.config.errors",
    "DataError": "cnnkeras.errors",
    "ExperimentConfig": "cnnkeras.config.schema",
    "ModelError": "cnnkeras.errors",
    "ReproduceResult": "cnnkeras.runner",
    "RunResult": "cnnkeras.runner",
    "TrainingDiverged": "cnnkeras.runner",
    "config_from_dict": "cnnkeras.api",
    "curves_frame": "cnnkeras.analysis.frames",
    "inspect": "cnnkeras.analysis.inspect",
    "list_models": "cnnkeras.zoo.registry",
    "zoo_table": "cnnkeras.analysis.inspect",
    "load_config": "cnnkeras.api",
    "load_model": "cnnkeras.api",
    "report": "cnnkeras.reporting.study_report",
    "reproduce": "cnnkeras.runner",
    "run": "cnnkeras.runner",
    "runs_frame": "cnnkeras.analysis.frames",
    "schema": "cnnkeras.api",
    "sweep": "cnnkeras.studies.study",
    "best": "cnnkeras.studies.best",
    "validate": "cnnkeras.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnkeras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
