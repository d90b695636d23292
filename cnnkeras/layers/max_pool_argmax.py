"""MaxPoolingWithArgmax2D: max pooling that also returns where each maximum was."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ._checks import positive_int
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("max_pool_argmax")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Non-overlapping p x p max pooling that returns ``(pooled, argmax)``.

    ``argmax`` holds, for every output position and channel, the index inside its
    window (row-major, ``0 .. p*p - 1``) of the maximum: what
    :class:`MaxUnpooling2D` needs to put values back where they came from
    (SegNet, Badrinarayanan et al. 2017). Ties go to the first index.

    Args:
        pool_size: The window side p (stride is p too).

    Input shape:
        ``(batch, height, width, channels)`` with height and width divisible by p.

    Output shape:
        Two tensors ``(batch, height / p, width / p, channels)``: the maxima
        (input dtype) and their window indices (int32).

    Example:

    >>> pooled, where = MaxPoolingWithArgmax2D(2)(keras.ops.ones((1, 4, 4, 3)))
    >>> pooled.shape, where.shape
    ((1, 2, 2, 3), (1, 2, 2, 3))
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = positive_int(pool_size, "pool_size")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        for size in input_shape[1:3]:
            if size is not None and size % self.pool_size:
                raise ValueError(f"Height and width must be divisible by pool_size={self.pool_size}. "
                                 f"Received: input_shape={input_shape}")

    def call(self, inputs):
        p = self.pool_size
        pooled = ops.max_pool(inputs, pool_size=p, strides=p, padding="valid")
        # Which position of each window holds the maximum, with two fused max pools and no
        # transpose: view the input as (batch, h, p, w, p, c) windows, score each position
        # that equals its window's maximum with p*p - index (first position scores highest),
        # and max-pool the scores: the winner is the first position holding the maximum.
        shape = ops.shape(inputs)
        h, w, c = shape[1] // p, shape[2] // p, shape[3]
        windows = ops.reshape(inputs, (-1, h, p, w, p, c))
        hits = ops.equal(windows, ops.reshape(pooled, (-1, h, 1, w, 1, c)))
        scores = ops.cast(hits, "float32") * self._scores()
        best = ops.max_pool(ops.reshape(scores, shape), pool_size=p, strides=p, padding="valid")
        # a window of NaNs has no maximum (best is 0): index p*p - 1, still a valid position
        return pooled, ops.minimum(p * p - ops.cast(best, "int32"), p * p - 1)

    def _scores(self):
        p = self.pool_size
        return np.asarray([[p * p - (i * p + j) for j in range(p)] for i in range(p)],
                          dtype="float32").reshape(1, 1, p, 1, p, 1)

    def compute_output_shape(self, input_shape):
        p = self.pool_size
        shape = (input_shape[0], None if input_shape[1] is None else input_shape[1] // p,
                 None if input_shape[2] is None else input_shape[2] // p, input_shape[3])
        return shape, shape

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)[0]
        return (keras.KerasTensor(shape, dtype=inputs.dtype), keras.KerasTensor(shape, dtype="int32"))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
