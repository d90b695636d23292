"""SpatialPyramidPooling2D: fixed-length features from any input size (He et al. 2014)."""

from __future__ import annotations

import math

import keras
from keras import ops

from ._checks import one_of, positive_int
from .registry import register_layer


def adaptive_bins(size: int, bins: int) -> list[tuple[int, int]]:
    """The [start, stop) windows that split ``size`` into ``bins`` (PyTorch's adaptive rule)."""
    return [(math.floor(i * size / bins), math.ceil((i + 1) * size / bins)) for i in range(bins)]


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("spp")
class SpatialPyramidPooling2D(keras.layers.Layer):
    """Pools the feature map into n x n bins for each level n, flattens and concatenates.

    With levels (1, 2, 4) every channel gives 1 + 4 + 16 = 21 numbers, whatever
    the height and width, so a dense classifier can follow a conv stack that takes
    images of any size (SPP-net, He, Zhang, Ren and Sun 2014).

    Args:
        levels: Bin counts per side, e.g. ``(1, 2, 4)``.
        mode: ``"max"`` or ``"average"`` pooling inside each bin.

    Input shape:
        ``(batch, height, width, channels)`` with height and width >= max(levels).

    Output shape:
        ``(batch, channels * sum(n * n for n in levels))``.

    Example:

    >>> SpatialPyramidPooling2D((1, 2, 4))(keras.ops.ones((2, 9, 7, 3))).shape
    (2, 63)
    """

    def __init__(self, levels=(1, 2, 4), mode="max", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(levels, (list, tuple)) or not levels:
            raise ValueError(f"Argument `levels` must be a non-empty list of positive ints. Received: levels={levels}")
        self.levels = tuple(positive_int(n, "levels") for n in levels)
        self.mode = one_of(mode, ("max", "average"), "mode")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if h is None or w is None:
            raise ValueError(f"SpatialPyramidPooling2D needs a known height and width. Received: input_shape={input_shape}")
        if min(h, w) < max(self.levels):
            raise ValueError(f"Input {h}x{w} is smaller than the finest level {max(self.levels)}. "
                             f"Received: levels={self.levels}")

    def call(self, inputs):
        reduce = ops.max if self.mode == "max" else ops.mean
        h, w = inputs.shape[1], inputs.shape[2]
        features = []
        for n in self.levels:
            for top, bottom in adaptive_bins(h, n):
                for left, right in adaptive_bins(w, n):
                    features.append(reduce(inputs[:, top:bottom, left:right, :], axis=(1, 2)))
        # (batch, bins, channels) -> (batch, bins * channels), bins in row-major order per level
        return ops.reshape(ops.stack(features, axis=1), (-1, len(features) * inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * sum(n * n for n in self.levels))

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "mode": self.mode}
