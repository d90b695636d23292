"""EfficientNet-B0 (Tan and Le, "EfficientNet: rethinking model scaling for convolutional
neural networks", ICML 2019).

Mobile inverted bottlenecks (MBConv: 1x1 expansion, depthwise 3x3/5x5, squeeze-and-
excitation, 1x1 projection, swish) found by architecture search, the base of the
compound-scaled family. Built by ``keras.applications.EfficientNetB0`` (which starts
with its own rescaling and normalization layers): 5,330,571 parameters (5,288,548
trainable) at 224x224x3 with 1000 classes.
"""

from __future__ import annotations

from ..lazy import lazy_import
from .applications import from_application
from .registry import register_model

keras = lazy_import("keras")

__all__ = ["efficientnet_b0"]


@register_model(paper="Tan and Le, EfficientNet, ICML 2019 (arXiv:1905.11946)", params=5_330_571,
                reference="keras.applications.EfficientNetB0", min_input=32)
def efficientnet_b0(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.2):
    """EfficientNet-B0: MBConv blocks with squeeze-and-excitation and swish (keras.applications)."""
    return from_application(keras.applications.EfficientNetB0, "efficientnet_b0", input_shape=input_shape,
                            num_classes=num_classes, head=head, dropout=dropout)
