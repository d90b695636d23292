"""SqueezeExcitation: reweight channels by a gate computed from their global averages."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import positive_int
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("squeeze_excitation")
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze (global average per channel), excite (two dense layers), scale the input.

    ``s = gate(W2 · act(W1 · mean_hw(x) + b1) + b2)`` and the output is ``x * s``,
    channel by channel (Hu et al., "Squeeze-and-excitation networks", CVPR 2018). The
    block adds ``2 * C * C / r + C / r + C`` weights and lets a network emphasise the
    channels that matter for each image; EfficientNet and MobileNet v3 use it.

    Args:
        ratio: Reduction ratio r: the bottleneck has ``max(1, channels // ratio)`` units.
            Ignored when ``squeeze_units`` is set.
        squeeze_units: The bottleneck's width, when it should not follow the input's
            channels (EfficientNet sizes it from the block's input, not its expansion).
        activation: The bottleneck's activation (``"relu"``; ``"swish"`` in EfficientNet).
        gate: The gate's activation (``"sigmoid"``; ``"hard_sigmoid"`` in MobileNet v3).

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        The same.

    Example:

    >>> SqueezeExcitation(ratio=4)(keras.ops.ones((2, 5, 5, 8))).shape
    (2, 5, 5, 8)
    """

    def __init__(self, ratio=16, squeeze_units=None, activation="relu", gate="sigmoid", **kwargs):
        super().__init__(**kwargs)
        self.ratio = positive_int(ratio, "ratio")
        self.squeeze_units = None if squeeze_units is None else positive_int(squeeze_units, "squeeze_units")
        self.activation = keras.activations.serialize(keras.activations.get(activation))
        self.gate = keras.activations.serialize(keras.activations.get(gate))
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The input's channels must be known. Received: input_shape={tuple(input_shape)}")
        units = self.squeeze_units or max(1, channels // self.ratio)
        self.squeeze = keras.layers.Dense(units, activation=self.activation, name="squeeze")
        self.excite = keras.layers.Dense(channels, activation=self.gate, name="excite")
        self.squeeze.build((input_shape[0], channels))
        self.excite.build((input_shape[0], units))

    def call(self, inputs):
        weights = self.excite(self.squeeze(ops.mean(inputs, axis=(1, 2))))
        return inputs * ops.cast(weights[:, None, None, :], inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "squeeze_units": self.squeeze_units,
                "activation": self.activation, "gate": self.gate}
