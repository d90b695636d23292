"""Silence the native start-up lines TensorFlow writes to stderr while it loads.

TensorFlow's C++ libraries print ``WARNING: All log messages before
absl::InitializeLog()...``, oneDNN and CUDA notices (and, at device discovery,
``failed call to cuInit`` on a machine without a GPU) straight to file descriptor 2,
before any logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot stop them (checked
with 2 and 3, ``GLOG_minloglevel``, ``ABSL_MIN_LOG_LEVEL``). :func:`install` puts an
import hook in front of ``tensorflow``: while that one import runs, descriptor 2
points at ``/dev/null``; Python errors still arrive as exceptions. Nothing is
imported early, so ``cnnkeras validate`` never waits for TensorFlow.
``CNNKERAS_NATIVE_LOGS=1`` keeps the lines (for debugging a broken install).

:func:`when_imported` runs a function right after a module is first imported: the CLI
quiets Optuna's logging that way, without importing Optuna (0.3 s) in commands that
never use it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["install", "silenced_stderr", "when_imported"]

QUIET_MODULES = ("tensorflow",)


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside the block (native code included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _HookedLoader(importlib.abc.Loader):
    """The real loader, its module executed by ``run(exec_module, module)``."""

    def __init__(self, loader: Any, run: Callable[[Callable[[Any], None], Any], None]):
        self.loader, self.run = loader, run

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.run(self.loader.exec_module, module)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Once, on the first import of top-level module ``name``: find its real spec, step aside,
    and hand its execution to ``run``."""

    def __init__(self, name: str, run: Callable[[Callable[[Any], None], Any], None]):
        self.name, self.run = name, run

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader, self.run)
        return spec


def _silenced(exec_module: Callable[[Any], None], module: Any) -> None:
    with silenced_stderr():
        exec_module(module)
        try:  # device discovery prints "failed call to cuInit" on a machine without a GPU: do it now
            module.config.list_physical_devices("GPU")
        except Exception:  # no tf.config (a partial install): the import itself went fine
            pass


def when_imported(name: str, then: Callable[[Any], None]) -> None:
    """Call ``then(module)`` once top-level module ``name`` is imported (at once if it already is)."""
    if name in sys.modules:
        then(sys.modules[name])
        return

    def run(exec_module: Callable[[Any], None], module: Any) -> None:
        exec_module(module)
        then(module)

    sys.meta_path.insert(0, _ImportHook(name, run))


def install() -> None:
    """Silence TensorFlow's native start-up lines the first time it is imported (idempotent)."""
    if os.environ.get("CNNKERAS_NATIVE_LOGS") or any(m in sys.modules for m in QUIET_MODULES):
        return
    for name in QUIET_MODULES:
        if not any(isinstance(f, _ImportHook) and f.run is _silenced and f.name == name for f in sys.meta_path):
            sys.meta_path.insert(0, _ImportHook(name, _silenced))
