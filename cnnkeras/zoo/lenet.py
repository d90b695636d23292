"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 1998), as the CNN notes describe it.

Input 28x28x1 (the paper's 32x32 digits are MNIST's 28x28 padded by 2, so C1 uses
padding 2 = 'same'), tanh activations (``activation`` takes any Keras name, or ``prelu``),
average pooling:

    C1 conv 6@5x5 pad 2 -> 28x28x6   S2 avgpool 2 -> 14x14x6
    C3 conv 16@5x5      -> 10x10x16  S4 avgpool 2 -> 5x5x16
    F5 dense 120 -> F6 dense 84 -> 10 outputs               61,706 parameters
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import output_head
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")
activations = lazy_import("cnnkeras.layers.activations")

__all__ = ["lenet5"]


@register_model(
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    params=61_706, input_shape=(28, 28, 1), num_classes=10, reference="the paper / the CNN notes",
    min_input=12,
)
def lenet5(
    *,
    input_shape=(28, 28, 1),
    num_classes=10,
    head="multiclass",
    activation="tanh",
    pooling="average",
    dropout=0.0,
    batch_norm=False,
    width_multiplier=1.0,
):
    """LeNet-5: two 5x5 conv + pooling stages and three dense layers (61,706 params on 28x28x1)."""
    if pooling not in ("average", "max"):
        raise ValueError(f"pooling must be 'average' or 'max'. Received: pooling={pooling}")
    pool = layers.AveragePooling2D if pooling == "average" else layers.MaxPooling2D
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = blocks.conv_bn_act(inputs, scaled(6, width_multiplier), 5, padding="same", activation=activation,
                    batch_norm=batch_norm, name="c1")
    x = pool(2, name="s2")(x)
    x = blocks.conv_bn_act(x, scaled(16, width_multiplier), 5, padding="valid", activation=activation,
                    batch_norm=batch_norm, name="c3")
    x = pool(2, name="s4")(x)
    x = layers.Flatten(name="flatten")(x)
    own, after = activations.split_activation(activation)  # prelu: a layer after each dense
    x = layers.Dense(scaled(120, width_multiplier), activation=own, name="f5")(x)
    x = activations.add_activation(x, after, name=f"f5_{after}")
    if dropout:
        x = layers.Dropout(dropout, name="f5_dropout")(x)
    x = layers.Dense(scaled(84, width_multiplier), activation=own, name="f6")(x)
    x = activations.add_activation(x, after, name=f"f6_{after}")
    if dropout:
        x = layers.Dropout(dropout, name="f6_dropout")(x)
    outputs = output_head(x, num_classes=num_classes, head=head)
    return keras.Model(inputs, outputs, name="lenet5")
