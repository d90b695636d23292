"""What an entry point (the CLI, a trial worker process) sets up for its whole process.

The library itself changes nothing on import: ``import cnnkeras`` sets no environment
variable and installs no import hook, so a notebook or a program that uses cnnkeras as a
library keeps its own stderr, logging and environment. A ``cnnkeras`` command is a
process of its own, and there cnnkeras decides, once, in :func:`quiet_process`:

- TensorFlow's C++ logging (``TF_CPP_MIN_LOG_LEVEL=2``) and the native lines it writes to
  stderr while it loads (:mod:`cnnkeras.quiet_imports`; ``CNNKERAS_NATIVE_LOGS=1`` keeps them);
- MLflow: errors only (no "model signature" warnings), no "View run at" lines, no usage
  telemetry (cnnkeras works offline; ``MLFLOW_DISABLE_TELEMETRY=false`` turns it back on);
- Optuna: errors only (cnnkeras prints a line per trial itself), set when Optuna is imported,
  and none of its warnings (a sweep's importances and plots warned in 200-column lines);
- MLflow's artifact download progress bar (``cnnkeras reproduce`` drew one).

Each is a default: a variable the user set keeps its value. Trial worker processes inherit
the environment and call this too.
"""

from __future__ import annotations

import os
import warnings

from . import quiet_imports

__all__ = ["quiet_process"]


def quiet_process() -> None:
    """Quiet the libraries' own output for this process (idempotent; see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", module=r"optuna(\.|$)")
    warnings.filterwarnings("ignore", module=r"optuna_integration(\.|$)")
    quiet_imports.install()
    quiet_imports.when_imported("optuna", lambda optuna: optuna.logging.set_verbosity(optuna.logging.ERROR))
