"""MaxUnpooling2D: put pooled maxima back at the positions they came from."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import positive_int
from ._windows import interleave_positions
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("max_unpool")
class MaxUnpooling2D(keras.layers.Layer):
    """The inverse of :class:`MaxPoolingWithArgmax2D`: a sparse p-times larger map.

    Each pooled value goes back to the position its window's argmax names; every
    other position is zero. Used in encoder-decoder nets (SegNet) for upsampling
    that keeps where the strong responses were.

    Args:
        pool_size: The window side p of the matching pooling.

    Input shape:
        A pair ``[pooled, argmax]``, each ``(batch, h, w, channels)``.

    Output shape:
        ``(batch, h * p, w * p, channels)``.

    Example:

    >>> pooled, where = MaxPoolingWithArgmax2D(2)(keras.ops.ones((1, 4, 4, 3)))
    >>> MaxUnpooling2D(2)([pooled, where]).shape
    (1, 4, 4, 3)
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = positive_int(pool_size, "pool_size")

    def call(self, inputs):
        pooled, argmax = inputs
        zero = ops.zeros_like(pooled)
        return interleave_positions(
            [ops.where(ops.equal(argmax, k), pooled, zero) for k in range(self.pool_size**2)], self.pool_size)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        p = self.pool_size
        return (shape[0], None if shape[1] is None else shape[1] * p, None if shape[2] is None else shape[2] * p,
                shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
