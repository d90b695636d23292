"""Xception (Chollet, "Xception: deep learning with depthwise separable convolutions", CVPR 2017).

Inception's idea taken to its limit: every 3x3 conv of the middle of the network is a
depthwise separable one (a 3x3 depthwise conv per channel, then a 1x1 pointwise conv),
in 36 conv layers with residual connections. Built by ``keras.applications.Xception``:
22,910,480 parameters at 224x224x3 with 1000 classes (its native input is 299x299;
the smallest it takes is 71x71).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .applications import from_application
from .registry import register_model

keras = lazy_import("keras")

__all__ = ["xception"]


@register_model(paper="Chollet, Xception, CVPR 2017 (arXiv:1610.02357)", params=22_910_480,
                reference="keras.applications.Xception", min_input=71)
def xception(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.0):
    """Xception: depthwise separable convolutions with residual connections (keras.applications)."""
    return from_application(keras.applications.Xception, "xception", input_shape=input_shape,
                            num_classes=num_classes, head=head, dropout=dropout)
