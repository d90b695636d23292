"""The private names cnnkeras relies on exist in the installed Keras and TensorFlow.

Each adapter module (:mod:`cnnkeras.adapters`) lists what it uses in ``REQUIRES``; on
another version of a library this test fails naming the attribute that moved, which is
where an upgrade starts. The pins in pyproject.toml bound the versions this was written for.
"""

from __future__ import annotations

import importlib
import re
import tomllib

import keras
import pytest

from cnnkeras.adapters import keras_internals, tensorflow_internals

from ..conftest import REPO


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def compiled_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("owner,attribute", keras_internals.REQUIRES)
def test_every_keras_internal_cnnkeras_uses_exists(owner, attribute, compiled_model):
    """Checked on a compiled model: some of them are set by ``compile``."""
    cls = _resolve(owner)
    target = compiled_model if isinstance(compiled_model, cls) else cls
    assert hasattr(target, attribute), (
        f"keras {keras.__version__} has no {owner}.{attribute}: cnnkeras/adapters/keras_internals.py needs "
        "updating for this Keras (pyproject.toml pins the versions it was written for)")


@pytest.mark.parametrize("module,attributes", tensorflow_internals.REQUIRES)
def test_every_tensorflow_internal_cnnkeras_uses_exists(module, attributes):
    pytest.importorskip("tensorflow")
    target = importlib.import_module(module)
    for attribute in attributes.split("."):
        assert hasattr(target, attribute), f"{module}.{attributes} is gone: update tensorflow_internals.py"
        target = getattr(target, attribute)
    assert isinstance(target, dict)


def test_the_libraries_with_adapters_or_callbacks_are_pinned_with_upper_bounds():
    """Keras and Optuna internals (or behaviours) are relied on: both ranges are bounded above."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("keras", "optuna", "optuna-integration", "tensorflow", "mlflow"):
        spec = next(d for d in dependencies if re.match(rf"{re.escape(name)}\b(?![-\w])", d))
        assert "<" in spec or "==" in spec, f"{spec}: no upper bound"


def test_the_installed_versions_lie_inside_the_pins():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in dependencies:
        requirement = Requirement(spec)
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{requirement.name} {installed} " \
                                                                           f"is outside {requirement.specifier}"
