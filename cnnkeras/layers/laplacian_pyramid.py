"""LaplacianPyramid: split images into band-pass levels and a low-pass residual."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import one_of, positive_int
from ._pyramid import expand, level_sizes, reduce
from .registry import register_layer

MODES = ("levels", "concat")


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("laplacian_pyramid")
class LaplacianPyramid(keras.layers.Layer):
    """A fixed (weightless) Laplacian pyramid (Burt and Adelson, 1983).

    With ``G0 = x`` and ``G(k+1) = reduce(Gk)`` (blur, keep every second pixel), the
    band-pass levels are ``Lk = Gk - expand(G(k+1))`` for ``k < levels``: what each scale
    adds to the one below it, edges at level 0 and coarser structure further down. The
    last output is the low-pass residual ``G(levels)``. :class:`LaplacianReconstruct`
    inverts it exactly (to float rounding), because it adds back the same ``expand``.

    Args:
        levels: Number of band-pass levels (the output has ``levels + 1`` maps). Each
            side of the input must be at least ``2 ** levels``.
        mode: ``"levels"``: the list ``[L0 (h, w), L1 (h/2, w/2), ..., G(levels)]``,
            for :class:`LaplacianReconstruct` or a multi-scale model. ``"concat"``: every
            level expanded back to ``(h, w)`` and concatenated on channels, one tensor, so
            the pyramid can be a fixed front end in a ``sequential`` model.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``"levels"``: a list of ``levels + 1`` tensors, level k of side ``ceil(side / 2**k)``
        with ``channels`` channels. ``"concat"``: ``(batch, height, width, channels * (levels + 1))``.

    Example:

    >>> pyramid = LaplacianPyramid(levels=2)(keras.ops.ones((1, 16, 12, 3)))
    >>> [tuple(level.shape) for level in pyramid]
    [(1, 16, 12, 3), (1, 8, 6, 3), (1, 4, 3, 3)]
    """

    def __init__(self, levels=3, mode="levels", **kwargs):
        super().__init__(**kwargs)
        self.levels = positive_int(levels, "levels")
        self.mode = one_of(mode, MODES, "mode")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        for side in input_shape[1:3]:
            if side is not None and side < 2**self.levels:
                raise ValueError(f"Each side of the input must be at least 2 ** levels = {2**self.levels}. "
                                 f"Received: input_shape={tuple(input_shape)}, levels={self.levels}")

    def call(self, inputs):
        gaussians = [inputs]
        for _ in range(self.levels):
            gaussians.append(reduce(gaussians[-1]))
        bands = [g - expand(below, ops.shape(g)[1], ops.shape(g)[2]) for g, below in zip(gaussians, gaussians[1:])]
        outputs = bands + [gaussians[-1]]
        if self.mode == "levels":
            return outputs
        full = []
        for k, level in enumerate(outputs):
            for j in range(k - 1, -1, -1):  # back up one level at a time, to the size of Gj
                level = expand(level, ops.shape(gaussians[j])[1], ops.shape(gaussians[j])[2])
            full.append(level)
        return ops.concatenate(full, axis=-1)

    def compute_output_shape(self, input_shape):
        batch, h, w, c = input_shape
        if self.mode == "concat":
            return (batch, h, w, c * (self.levels + 1))
        return [(batch, hk, wk, c) for hk, wk in zip(level_sizes(h, self.levels), level_sizes(w, self.levels))]

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "mode": self.mode}
