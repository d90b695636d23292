"""Upsample2D: scale images by an integer factor with any of Keras' interpolations."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import one_of, pair
from .registry import register_layer

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("upsample")
class Upsample2D(keras.layers.Layer):
    """Multiplies height and width by ``scale`` with a chosen interpolation.

    ``keras.layers.UpSampling2D`` offers only nearest and bilinear, and
    ``keras.layers.Resizing`` needs a fixed output size; this layer takes a scale
    factor and any of nearest, bilinear, bicubic, lanczos3 or lanczos5, through
    ``keras.ops.image.resize``.

    Args:
        scale: Integer factor, or a ``(h, w)`` pair.
        interpolation: One of nearest, bilinear, bicubic, lanczos3, lanczos5.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height * scale_h, width * scale_w, channels)``.

    Example:

    >>> Upsample2D(2, "bicubic")(keras.ops.ones((1, 3, 3, 2))).shape
    (1, 6, 6, 2)
    """

    def __init__(self, scale=2, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.scale = pair(scale, "scale")
        self.interpolation = one_of(interpolation, INTERPOLATIONS, "interpolation")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        if self.interpolation == "nearest":  # at an integer scale, each pixel repeated: what UpSampling2D does
            return ops.repeat(ops.repeat(inputs, self.scale[0], axis=1), self.scale[1], axis=2)
        size = (inputs.shape[1] * self.scale[0], inputs.shape[2] * self.scale[1])
        return ops.cast(ops.image.resize(inputs, size, interpolation=self.interpolation, antialias=False),
                        inputs.dtype)

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h * self.scale[0], None if w is None else w * self.scale[1],
                input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "interpolation": self.interpolation}
