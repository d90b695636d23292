"""MaxPoolingWithArgmax2D: max pooling that also returns where each maximum was."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import positive_int
from ._windows import window_positions
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("max_pool_argmax")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Non-overlapping p x p max pooling that returns ``(pooled, argmax)``.

    ``argmax`` holds, for every output position and channel, the index inside its
    window (row-major, ``0 .. p*p - 1``) of the maximum: what
    :class:`MaxUnpooling2D` needs to put values back where they came from
    (SegNet, Badrinarayanan et al. 2017). Ties go to the first index. A window
    holding a NaN pools to NaN on every backend (a diverging net is never hidden;
    the built-in max pooling ignores NaNs on TensorFlow), and its argmax is then
    some position of the window.

    The window positions play a tournament: ``p * p`` elementwise maps, compared
    pairwise, no reduce-window. The gradient flows through the winning selections
    only, so it reaches exactly the argmax positions (``MaxUnpooling2D`` of the
    upstream gradient), and costs a few elementwise ops: less than the built-in
    max pooling's gradient on TensorFlow and JAX (``benchmarks/zoo.py``).

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
        return _first_maximum(window_positions(inputs, self.pool_size))

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


def _first_maximum(parts: list) -> tuple:
    """The maximum of ``parts`` elementwise and the index of the first part holding it.

    A pairwise tournament, earlier parts always on the left, so a tie keeps the
    earlier index: ceil(log2(n)) rounds, n - 1 comparisons.
    """
    entrants = [(part, k) for k, part in enumerate(parts)]
    while len(entrants) > 1:
        winners = [_match(entrants[j], entrants[j + 1]) for j in range(0, len(entrants) - 1, 2)]
        entrants = winners + entrants[2 * len(winners):]
    value, index = entrants[0]
    return value, ops.zeros_like(value, dtype="int32") if isinstance(index, int) else index


def _match(left: tuple, right: tuple) -> tuple:
    """One comparison: the right entrant wins when strictly greater; a NaN always wins the value."""
    (left_value, left_index), (right_value, right_index) = left, right
    right_wins = ops.greater(right_value, left_value)
    if _MAXIMUM_ROUTES_TIES_LEFT:
        value = ops.maximum(left_value, right_value)
    else:
        value = ops.where(ops.logical_or(right_wins, ops.isnan(right_value)), right_value, left_value)
    if isinstance(left_index, int) and isinstance(right_index, int):  # first round: positions k, k + 1
        index = ops.cast(right_wins, "int32")
        index = index + left_index if left_index else index
    else:
        index = ops.where(right_wins, right_index, left_index)
    return value, index


# TensorFlow's maximum sends a tie's gradient to its first argument (the earlier position,
# the argmax), and it is the fastest kernel there (~0.5 ms per 4 MB map less than a select).
# JAX's and PyTorch's split a tie's gradient between both sides, so they select; under XLA
# the select and the NaN test fuse into the comparison.
_MAXIMUM_ROUTES_TIES_LEFT = keras.backend.backend() == "tensorflow"
