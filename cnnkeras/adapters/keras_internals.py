"""The Keras 3 internals cnnkeras relies on, for the Keras versions pinned in pyproject.toml.

Why each is needed:

- **A cohort of compiled models** (:mod:`cnnkeras.training.cohort`) trains K models that
  were each compiled on their own (optimizer, loss, metrics) as one program. Keras has no
  public way to reuse a compiled model's loss and metric containers from another model's
  train step, so the cohort reaches them here: the compiled loss and metrics (built
  symbolically from the first batch, as ``Trainer._symbolic_build`` does), the loss
  tracker that produces the ``loss`` log, and the metrics a model owns.
- **Every nested layer** of a built model (:func:`flatten_layers`), including layers held
  as attributes of custom blocks, which ``model.layers`` does not list: L1/L2 penalties
  are attached to each kernel after building.

Nothing else in cnnkeras touches a private Keras name (``tests/unit/test_adapters.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["REQUIRES", "build_compiled_state", "compiled_parts", "flatten_layers", "loss_tracker", "own_metrics",
           "symbolic_build"]

#: Private attributes used here, as (class path, attribute): checked by a test on the installed Keras.
REQUIRES = (
    ("keras.Model", "_compile_loss"),
    ("keras.Model", "_compile_metrics"),
    ("keras.Model", "_loss_tracker"),
    ("keras.Model", "_get_own_metrics"),
    ("keras.Model", "_symbolic_build"),
    ("keras.layers.Layer", "_flatten_layers"),
)


def compiled_parts(model: Any) -> list[Any]:
    """The compiled loss and metric containers of ``model`` (those it has)."""
    return [part for part in (model._compile_loss, model._compile_metrics) if part is not None]


def build_compiled_state(model: Any, y: Any, y_pred: Any) -> None:
    """Build ``model``'s compiled loss and metrics for targets ``y`` and predictions ``y_pred``
    (symbolic tensors), as its own first train step would."""
    for part in compiled_parts(model):
        if not part.built:
            part.build(y, y_pred)


def is_compiled_state_built(model: Any) -> bool:
    return all(part.built for part in compiled_parts(model))


def loss_tracker(model: Any) -> Any:
    """The metric that averages ``model``'s loss over the epoch (its ``loss`` log)."""
    return model._loss_tracker


def update_compiled_metrics(model: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> None:
    """Update ``model``'s compiled metrics, as its own ``compute_metrics`` would."""
    if model._compile_metrics is not None:
        model._compile_metrics.update_state(y, y_pred, sample_weight)


def own_metrics(model: Any) -> list[Any]:
    """The metrics ``model`` reports itself (its compiled metrics; not its layers')."""
    return list(model._get_own_metrics())


def symbolic_build(model: Any, data_batch: Any) -> None:
    """Keras' own symbolic build of a compiled model from one batch (optimizer and metric variables)."""
    model._symbolic_build(iterator=None, data_batch=data_batch)


def flatten_layers(model: Any) -> Iterator[Any]:
    """Every layer inside ``model`` (nested models and layers held by custom layers), not the model itself."""
    return model._flatten_layers(include_self=False, recursive=True)
