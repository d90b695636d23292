"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep
convolutional neural networks", NeurIPS 2012).

The single-tower variant of torchvision ("One weird trick", Krizhevsky 2014):
64-192-384-256-256 feature maps, 6x6 adaptive average pooling and two 4096-unit
layers; 61,100,840 parameters at 224x224x3 with 1000 classes. ``lrn=True`` adds the
paper's local response normalization after conv1 and conv2 (no parameters).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
custom_layers = lazy_import("cnnkeras.layers")

__all__ = ["alexnet"]


@register_model(paper="Krizhevsky et al., ImageNet classification with deep CNNs, NeurIPS 2012",
                params=61_100_840, reference="torchvision alexnet (trainable parameters)", count="trainable", min_input=63)
def alexnet(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.5, width_multiplier=1.0,
            batch_norm=False, lrn=False, small_input=False):
    """AlexNet: five conv layers (11x11/4 stem), max pooling, two 4096-unit dense layers."""
    w = width_multiplier
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    pool_padding = "same" if small_input else "valid"
    if small_input:  # 32x32: a 3x3 stride-1 stem keeps the map large enough for three poolings
        x = layers.Conv2D(scaled(64, w), 3, padding="same", activation="relu", name="conv1")(inputs)
    else:
        x = layers.ZeroPadding2D(2, name="conv1_pad")(inputs)
        x = layers.Conv2D(scaled(64, w), 11, strides=4, activation="relu", name="conv1")(x)
    for i, filters in ((1, None), (2, 192)):
        if filters:
            x = layers.Conv2D(scaled(filters, w), 5, padding="same", activation="relu", name=f"conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        if lrn:
            x = custom_layers.LocalResponseNormalization(name=f"conv{i}_lrn")(x)
        x = layers.MaxPooling2D(3, strides=2, padding=pool_padding, name=f"pool{i}")(x)
    for i, filters in ((3, 384), (4, 256), (5, 256)):
        x = layers.Conv2D(scaled(filters, w), 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding=pool_padding, name="pool5")(x)
    if not small_input:
        x = layers.AdaptiveAveragePooling2D((6, 6), name="adaptive_pool")(x)
    # Small inputs pool globally (1x1): keras 3.15's AdaptiveAveragePooling2D fails to
    # trace for a 1x1 output inside a compiled train step, and global pooling is the same.
    x = classifier(x, num_classes=num_classes, head=head, units=(scaled(4096, w), scaled(4096, w)),
                   dropout=dropout, flatten=not small_input)
    return keras.Model(inputs, x, name="alexnet")
