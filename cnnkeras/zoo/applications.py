"""Architectures taken whole from ``keras.applications`` (not hand-written again), with cnnkeras' heads.

The convolutional part comes from Keras (``include_top=False, weights=None``); the
classifier is :func:`cnnkeras.zoo.heads.classifier` (global average pooling, optional
dropout, the output head), so every head, dropout and the data's classes work as for
the rest of the zoo, and the parameter count with 1000 classes equals the application's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..lazy import lazy_import
from .heads import classifier

keras = lazy_import("keras")

__all__ = ["from_application"]


def from_application(application: Callable[..., Any], name: str, *, input_shape, num_classes: int, head: str,
                     dropout: float, **options: Any) -> Any:
    """``application``'s feature extractor (random weights) topped by cnnkeras' classifier."""
    base = application(include_top=False, weights=None, input_shape=tuple(input_shape), **options)
    outputs = classifier(base.output, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(base.input, outputs, name=name)
