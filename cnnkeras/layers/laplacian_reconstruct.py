"""LaplacianReconstruct: rebuild images from a Laplacian pyramid's levels."""

from __future__ import annotations

import keras
from keras import ops

from ._pyramid import expand
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("laplacian_reconstruct")
class LaplacianReconstruct(keras.layers.Layer):
    """The inverse of :class:`LaplacianPyramid` (``mode="levels"``).

    Starting from the low-pass residual, ``Gk = Lk + expand(G(k+1))`` up to level 0:
    the pyramid's own ``expand``, so the input comes back to float rounding. With
    modified band-pass levels (denoised, sharpened, predicted by a network) this is
    how a multi-scale image is put back together.

    Input shape:
        A list ``[L0, L1, ..., residual]`` as :class:`LaplacianPyramid` returns it.

    Output shape:
        The shape of ``L0``: ``(batch, height, width, channels)``.

    Example:

    >>> x = keras.ops.ones((1, 16, 12, 3))
    >>> LaplacianReconstruct()(LaplacianPyramid(levels=2)(x)).shape
    (1, 16, 12, 3)
    """

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError("LaplacianReconstruct takes the list [L0, ..., residual] of a LaplacianPyramid. "
                             f"Received: inputs={inputs!r}")
        image = inputs[-1]
        for band in reversed(inputs[:-1]):
            image = band + expand(image, ops.shape(band)[1], ops.shape(band)[2])
        return image

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
