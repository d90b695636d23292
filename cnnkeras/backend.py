"""Choose the Keras backend (TensorFlow, JAX or PyTorch) before Keras is imported.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice has to
be made before anything touches Keras: the CLI and :mod:`cnnkeras.api` call
:func:`use_backend` with the config's ``backend`` (or ``--backend``) first thing. Where
Keras is already loaded with another backend (a notebook that imported it), the
error says so instead of running on the wrong one.

On JAX, compiled XLA programs are kept in a persistent cache on disk, so the next run
of the same model and shapes skips compilation (:func:`compile_cache_dir`: beside a
SQLite tracking store, else ``$XDG_CACHE_HOME/cnnkeras``). TensorFlow and PyTorch
keep no such cache across processes. A JAX cache is trusted code: it lives in the
user's own folders, and ``CNNKERAS_COMPILE_CACHE=off`` turns it off.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

from .errors import BackendError

__all__ = ["BACKENDS", "active_backend", "compile_cache_dir", "use_backend"]

#: Backend name -> the package that must be installed for it.
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_INSTALL = {"tensorflow": "pip install 'tensorflow-cpu==2.21.*'", "jax": "pip install 'cnnkeras[jax]'",
            "torch": "pip install torch"}


def active_backend() -> str:
    """The backend Keras uses (or will use when imported): the loaded one, else $KERAS_BACKEND, else tensorflow."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def compile_cache_dir(tracking_uri: str | None) -> Path:
    """Where compiled programs are cached: ``.cnnkeras-cache/`` beside a SQLite store, else the user cache."""
    # tracking.default_tracking_uri's rule, restated: this layer sits below tracking and config
    # checks choose the backend before any tracking module is loaded.
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve().parent / ".cnnkeras-cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnkeras"


def use_backend(name: str | None, *, tracking_uri: str | None = None) -> str:
    """Make ``name`` (None: keep the current choice) Keras' backend; returns the backend in use.

    Raises BackendError (one line) when the backend's package is not installed or Keras is
    already loaded with another one.
    """
    wanted = name or active_backend()
    if wanted not in BACKENDS:
        raise BackendError(f"unknown Keras backend {wanted!r}: choose one of {', '.join(BACKENDS)}. "
                           f"Received: backend={wanted!r}")
    loaded = sys.modules.get("keras")
    if loaded is not None and hasattr(loaded, "backend"):
        current = str(loaded.backend.backend())
        if current != wanted:
            raise BackendError(f"Keras is already loaded with the {current} backend in this process, so it cannot "
                               f"switch to {wanted}: start a new process (or set KERAS_BACKEND={wanted} first)")
        return current
    # PathFinder, not importlib.util.find_spec: the meta-path hooks (quiet_imports) act once, on the real import
    if importlib.machinery.PathFinder.find_spec(BACKENDS[wanted]) is None:
        raise BackendError(f"the {wanted} backend is not installed here ({_INSTALL[wanted]}), "
                           f"or choose another: {', '.join(b for b in BACKENDS if b != wanted)}")
    os.environ["KERAS_BACKEND"] = wanted
    if wanted == "jax" and os.environ.get("CNNKERAS_COMPILE_CACHE", "on") != "off":
        _cache_jax_programs(compile_cache_dir(tracking_uri) / "jax")
    return wanted


def _cache_jax_programs(folder: Path) -> None:
    """Point JAX's persistent compilation cache at ``folder`` (a user's own JAX_* settings win)."""
    if "jax" in sys.modules:  # already configured by whoever imported it
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable place: run uncached rather than fail
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    # Cache every program: a LeNet step compiles in under the default 1 s threshold, yet
    # dozens of them make up a run's start-up.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
