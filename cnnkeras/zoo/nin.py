"""Network in Network (Lin, Chen and Yan, "Network in network", ICLR 2014).

Each mlpconv block is a k x k convolution followed by two 1x1 convolutions (a
small MLP sliding over the image); there are no dense layers: the last mlpconv
has one map per class and global average pooling turns each map into a score.
The ImageNet layout of d2l.ai (96-11/4, 256-5, 384-3, classes-3).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["nin"]


@register_model(paper="Lin, Chen and Yan, Network in network, ICLR 2014", params=7_439_608,
                reference="hand count of the d2l.ai ImageNet layout (no published count)", min_input=67)
def nin(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.5, width_multiplier=1.0,
        batch_norm=False, small_input=False):
    """NiN: four mlpconv blocks and global average pooling over per-class maps (no dense layers)."""
    w = width_multiplier
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if small_input:
        x = blocks.mlpconv(inputs, scaled(96, w), 3, batch_norm=batch_norm, name="mlpconv1")
    else:
        x = blocks.mlpconv(inputs, scaled(96, w), 11, strides=4, padding="valid", batch_norm=batch_norm, name="mlpconv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same" if small_input else "valid", name="pool1")(x)
    x = blocks.mlpconv(x, scaled(256, w), 5, batch_norm=batch_norm, name="mlpconv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same" if small_input else "valid", name="pool2")(x)
    x = blocks.mlpconv(x, scaled(384, w), 3, batch_norm=batch_norm, name="mlpconv3")
    x = layers.MaxPooling2D(3, strides=2, padding="same" if small_input else "valid", name="pool3")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs_per_pixel = num_classes if head == "multiclass" else 1
    x = blocks.mlpconv(x, outputs_per_pixel, 3, activation="relu" if head == "multiclass" else None, name="mlpconv4")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    final = {"multiclass": "softmax", "binary": "sigmoid", "regression": "linear"}[head]
    x = layers.Activation(final, name="predictions")(x)
    return keras.Model(inputs, x, name="nin")
