"""RandomPaddedCrop: pad with zeros, then crop back to the input's size at a random place (training only)."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import positive_int
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("random_padded_crop")
class RandomPaddedCrop(keras.layers.Layer):
    """Random-crop augmentation that keeps the image size: zero-pad, then crop a random window.

    The CIFAR recipe of He et al. 2016 ("Deep residual learning", Sec. 4.2: 4 pixels
    padded on each side and a 32x32 crop sampled from the padded image): each image
    moves by a whole number of pixels, up to ``padding`` in each direction, with zeros
    where it moved away. Every image of a batch gets its own offsets. In inference the
    layer is the identity (Keras' ``RandomCrop`` resizes instead, and would shrink a
    padded image).

    Args:
        padding: Pixels of zeros added on each side (the largest shift), a positive int.
        seed: Seed of the offsets.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        The same.

    Example:

    >>> x = keras.ops.ones((2, 8, 8, 1))
    >>> RandomPaddedCrop(2, seed=0)(x, training=True).shape
    (2, 8, 8, 1)
    >>> float(keras.ops.sum(RandomPaddedCrop(2, seed=0)(x, training=False)))
    128.0
    """

    def __init__(self, padding=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = positive_int(padding, "padding")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.supports_jit = True

    def call(self, inputs, training=False):
        if not training:
            return inputs
        p = self.padding
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        padded = ops.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)))
        top = keras.random.randint((batch, 1), 0, 2 * p + 1, seed=self.seed_generator)
        left = keras.random.randint((batch, 1), 0, 2 * p + 1, seed=self.seed_generator)
        rows = top + ops.expand_dims(ops.arange(height, dtype=top.dtype), 0)  # (batch, height)
        cols = left + ops.expand_dims(ops.arange(width, dtype=left.dtype), 0)  # (batch, width)
        channels = inputs.shape[-1]
        padded_width = padded.shape[2] if padded.shape[2] is not None else width + 2 * p
        rows = ops.broadcast_to(rows[:, :, None, None], (batch, height, padded_width, channels))
        x = ops.take_along_axis(padded, rows, axis=1)
        cols = ops.broadcast_to(cols[:, None, :, None], (batch, height, width, channels))
        return ops.take_along_axis(x, cols, axis=2)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}
