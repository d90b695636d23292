"""ChannelShuffle: interleave the channels of g groups, as ShuffleNet does between grouped convs."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import positive_int
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("channel_shuffle")
class ChannelShuffle(keras.layers.Layer):
    """Reorders channels so that each group's channels are spread across all groups.

    After a grouped convolution each output group sees only its own input group;
    shuffling (reshape to ``(groups, channels / groups)``, transpose, flatten) lets the
    next grouped convolution mix information across groups at no cost in weights
    (Zhang et al., ShuffleNet, 2018; Ma et al., ShuffleNet v2, 2018).

    Args:
        groups: Number of channel groups g; the channel count must be a multiple of it.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        The same; output channel ``j * g + i`` is input channel ``i * (channels / g) + j``.

    Example:

    >>> x = keras.ops.reshape(keras.ops.arange(6, dtype="float32"), (1, 1, 1, 6))
    >>> keras.ops.convert_to_numpy(ChannelShuffle(2)(x)).ravel().tolist()
    [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """

    def __init__(self, groups=2, **kwargs):
        super().__init__(**kwargs)
        self.groups = positive_int(groups, "groups")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(f"The input's channels must be a multiple of `groups` ({self.groups}). "
                             f"Received: input_shape={tuple(input_shape)}")

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        x = ops.reshape(inputs, (shape[0], shape[1], shape[2], self.groups, channels // self.groups))
        x = ops.transpose(x, (0, 1, 2, 4, 3))
        return ops.reshape(x, (shape[0], shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
