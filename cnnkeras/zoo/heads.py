"""Output heads and the loss and metrics that go with each.

multiclass: ``Dense(num_classes, softmax)`` with (sparse) categorical cross-entropy
and accuracy. binary: ``Dense(1, sigmoid)`` with binary cross-entropy and
accuracy. regression: ``Dense(num_outputs)`` linear, with mean squared error and
mean absolute error. segmentation: a class per pixel (see
:mod:`cnnkeras.zoo.segmentation_head`), built by the segmentation models themselves.
"""

from __future__ import annotations

from typing import Any

from ..lazy import lazy_import
from .segmentation_head import segmentation_loss_and_metrics

keras = lazy_import("keras")

__all__ = ["HEADS", "head_loss_and_metrics", "output_head"]

HEADS = ("multiclass", "binary", "regression", "segmentation")


def output_head(x: Any, *, num_classes: int, head: str = "multiclass", name: str = "predictions") -> Any:
    """Append the output layer for ``head`` to the tensor ``x`` (N, features).

    The head always computes in float32, so softmax and the loss stay stable under
    mixed precision.
    """
    if head == "multiclass":
        return keras.layers.Dense(num_classes, activation="softmax", name=name, dtype="float32")(x)
    if head == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name=name, dtype="float32")(x)
    if head == "regression":
        return keras.layers.Dense(1, name=name, dtype="float32")(x)
    if head == "segmentation":
        raise ValueError("head segmentation needs a segmentation model (unet, segnet, fcn8s, fpn_resnet18, ...): "
                         f"this one ends in a pooled classifier. Received: head={head}")
    raise ValueError(f"head must be one of {HEADS}. Received: head={head}")


def head_loss_and_metrics(
    head: str, *, label_smoothing: float = 0.0, data_loss: bool = False, num_outputs: int | None = None,
    loss: str | None = None,
) -> tuple[Any, list[Any]]:
    """The loss object and metrics that match ``head``.

    ``segmentation`` needs ``num_outputs`` (the model's output channels: C, or 1 for a
    sigmoid) and takes ``loss`` (:mod:`cnnkeras.zoo.segmentation_head`).

    With ``data_loss=True`` the loss is also tracked as a metric named
    ``data_loss``: Keras' reported ``loss`` includes weight penalties, this one
    does not, so the generalization gap stays comparable across L1/L2 values.
    """
    if head == "segmentation":
        assert num_outputs is not None
        return segmentation_loss_and_metrics(num_outputs, loss=loss or "cross_entropy", data_loss=data_loss)
    if head == "multiclass":
        if label_smoothing > 0:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            metric = keras.metrics.CategoricalCrossentropy(label_smoothing=label_smoothing, name="data_loss")
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            metric = keras.metrics.SparseCategoricalCrossentropy(name="data_loss")
        metrics: list[Any] = ["accuracy"]
    elif head == "binary":
        loss, metric, metrics = keras.losses.BinaryCrossentropy(), keras.metrics.BinaryCrossentropy(name="data_loss"), ["accuracy"]
    elif head == "regression":
        loss, metric, metrics = keras.losses.MeanSquaredError(), keras.metrics.MeanSquaredError(name="data_loss"), ["mae"]
    else:
        raise ValueError(f"head must be one of {HEADS}. Received: head={head}")
    return loss, metrics + ([metric] if data_loss else [])


def classifier(x: Any, *, num_classes: int, head: str, units: tuple[int, ...] = (), dropout: float = 0.0,
               activation: str = "relu", flatten: bool = False, name: str = "fc") -> Any:
    """Global average pooling (or flatten), optional dense layers with dropout, then the output head."""
    x = keras.layers.Flatten(name="flatten")(x) if flatten else keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    for i, n in enumerate(units, start=1):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}{i}_dropout")(x)
        x = keras.layers.Dense(n, activation=activation, name=f"{name}{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return output_head(x, num_classes=num_classes, head=head)
