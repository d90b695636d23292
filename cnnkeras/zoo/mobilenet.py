"""MobileNet v1 (Howard et al., "MobileNets: efficient convolutional neural networks
for mobile vision applications", 2017).

A 3x3 conv stem, then 13 depthwise separable blocks (3x3 depthwise -> 1x1
pointwise, each with BN and ReLU6); ``width_multiplier`` is the paper's alpha.
4,253,864 parameters at 224x224x3 with 1000 classes, as keras.applications.MobileNet.

MobileNet v2 (Sandler et al., "MobileNetV2: inverted residuals and linear bottlenecks",
CVPR 2018): narrow-wide-narrow blocks (1x1 expansion by 6, 3x3 depthwise, linear 1x1
projection) with residuals between the narrow ends. Built by
``keras.applications.MobileNetV2``: 3,538,984 parameters at 224x224x3, 1000 classes.
"""

from __future__ import annotations

from ..lazy import lazy_import
from .applications import from_application
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["mobilenet", "mobilenet_v2"]

# (pointwise filters, depthwise stride)
SEPARABLE = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1)]


@register_model(paper="Howard et al., MobileNets, arXiv:1704.04861, 2017", params=4_253_864,
                reference="keras.applications.MobileNet", min_input=32)
def mobilenet(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=1e-3,
              width_multiplier=1.0, batch_norm=True, small_input=False):
    """MobileNet v1: 13 depthwise separable blocks (3x3 depthwise + 1x1 pointwise)."""
    w = width_multiplier
    kw = {"batch_norm": batch_norm, "activation": "relu6", "use_bias": not batch_norm}
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = blocks.conv_bn_act(inputs, scaled(32, w), 3, strides=1 if small_input else 2, name="conv1", **kw)
    for i, (filters, stride) in enumerate(SEPARABLE, start=1):
        if small_input and i <= 2:
            stride = 1  # keep 32x32 inputs from shrinking below 2x2 before the last stage
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=not batch_norm, name=f"dw{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.Activation("relu6", name=f"dw{i}_act")(x)
        x = blocks.conv_bn_act(x, scaled(filters, w), 1, name=f"pw{i}", **kw)
    x = classifier(x, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(inputs, x, name="mobilenet")


@register_model(paper="Sandler et al., MobileNetV2, CVPR 2018 (arXiv:1801.04381)", params=3_538_984,
                reference="keras.applications.MobileNetV2", min_input=32)
def mobilenet_v2(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.0,
                 width_multiplier=1.0):
    """MobileNet v2: inverted residuals with linear bottlenecks (keras.applications)."""
    return from_application(keras.applications.MobileNetV2, "mobilenet_v2", input_shape=input_shape,
                            num_classes=num_classes, head=head, dropout=dropout, alpha=width_multiplier)
