"""cnnkeras: declarative CNN experiments on Keras 3, tracked in MLflow, swept with Optuna.

The public API (each also a CLI command)::

    import cnnkeras
    config = cnnkeras.load_config("experiments/quickstart.yaml", ["train.epochs=3"])
    result = cnnkeras.run(config)
    print(result.summary["test_accuracy"], result.run_id)
    cnnkeras.reproduce(result.run_id)

Heavy dependencies (Keras, MLflow, Optuna, plotly) load on first use. Importing the package
changes nothing in the process (no environment variable, no import hook): the ``cnnkeras``
command quiets the libraries for itself (:mod:`cnnkeras.process`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .config.checks import register_check
from .lazy import lazy_import

_zoo_build = lazy_import("cnnkeras.zoo.build")


@register_check
def _zoo_check(config: Any) -> Any:
    """The zoo's check (architecture names, options, declarative layers), wired in here so that
    config never imports the zoo and every loader still runs it."""
    return _zoo_build.check_model_config(config)


from .version import __version__  # noqa: E402, F401

_EXPORTS = {
    "BackendError": "cnnkeras.errors",
    "CnnkerasError": "cnnkeras.errors",
    "ConfigError": "cnnkeras.config.errors",
    "DataError": "cnnkeras.errors",
    "ExperimentConfig": "cnnkeras.config.schema",
    "ModelError": "cnnkeras.errors",
    "ReproduceResult": "cnnkeras.runner",
    "RunResult": "cnnkeras.runner",
    "TrainingDiverged": "cnnkeras.errors",
    "SweepInterrupted": "cnnkeras.errors",
    "UnknownName": "cnnkeras.errors",
    "StorageUnavailable": "cnnkeras.errors",
    "TrackingError": "cnnkeras.errors",
    "cache_clear": "cnnkeras.api",
    "cache_list": "cnnkeras.api",
    "config_from_dict": "cnnkeras.config",
    "curves_frame": "cnnkeras.analysis.frames",
    "grant": "cnnkeras.api",
    "inspect": "cnnkeras.zoo.inspect",
    "list_models": "cnnkeras.zoo.registry",
    "zoo_table": "cnnkeras.zoo.inspect",
    "zoo_catalog": "cnnkeras.zoo.catalog",
    "load_config": "cnnkeras.config",
    "load_model": "cnnkeras.api",
    "report": "cnnkeras.reporting.study_report",
    "reproduce": "cnnkeras.api",
    "run": "cnnkeras.api",
    "runs_frame": "cnnkeras.analysis.frames",
    "schema": "cnnkeras.api",
    "ui": "cnnkeras.api",
    "sweep": "cnnkeras.api",
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
