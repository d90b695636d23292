"""DenseNet (Huang, Liu, van der Maaten and Weinberger, "Densely connected
convolutional networks", CVPR 2017).

DenseNet-121: a 7x7 stem, dense blocks of 6, 12, 24 and 16 bottleneck layers
(growth rate 32) joined by transitions that halve the channels and the size;
8,062,504 parameters at 224x224x3 with 1000 classes, as keras.applications.DenseNet121.
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["densenet121"]


@register_model(paper="Huang et al., Densely connected convolutional networks, CVPR 2017", params=8_062_504,
                reference="keras.applications.DenseNet121", min_input=32)
def densenet121(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.0,
                width_multiplier=1.0, batch_norm=True, small_input=False, growth_rate=32):
    """DenseNet-121: dense blocks (6, 12, 24, 16), growth rate 32, compression 0.5."""
    k = scaled(growth_rate, width_multiplier)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    stem = {"batch_norm": batch_norm, "use_bias": not batch_norm, "bn_epsilon": 1.001e-5}
    if small_input:
        x = blocks.conv_bn_act(inputs, 2 * k, 3, name="conv1", **stem)
    else:
        x = blocks.conv_bn_act(inputs, 2 * k, 7, strides=2, name="conv1", **stem)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for i, num_layers in enumerate((6, 12, 24, 16), start=1):
        x = blocks.dense_block(x, num_layers, k, batch_norm=batch_norm, name=f"dense{i}")
        if i < 4:
            x = blocks.transition(x, 0.5, batch_norm=batch_norm, name=f"transition{i}")
    if batch_norm:
        x = layers.BatchNormalization(epsilon=1.001e-5, name="final_bn")(x)
    x = layers.Activation("relu", name="final_relu")(x)
    x = classifier(x, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(inputs, x, name="densenet121")
