"""The one way cnnkeras defers an import: ``keras = lazy_import("keras")`` at the top of a module.

TensorFlow (through Keras), MLflow, Optuna, plotly, SciPy and scikit-learn take seconds
to import; ``cnnkeras validate``, ``cnnkeras schema`` and ``--help`` need none of them.
A module names every dependency at its top; the heavy ones through :func:`lazy_import`,
which returns the module itself when it is already imported, else a stand-in that
imports it on first attribute access (like Optuna's ``_LazyImport``). Everything else
is a plain import at the top.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["lazy_import"]


class _LazyModule(types.ModuleType):
    """A module that is imported the first time one of its attributes is read."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def _load(self) -> types.ModuleType:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__.update(module.__dict__)  # later reads skip __getattr__
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_target']!r}>"


def lazy_import(name: str) -> Any:
    """``name`` as a module, imported on first use (at once if it already is)."""
    return sys.modules[name] if name in sys.modules else _LazyModule(name)
