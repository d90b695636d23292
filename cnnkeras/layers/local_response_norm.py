"""LocalResponseNormalization: AlexNet's normalization across neighbouring channels."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ._checks import number_in
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("lrn")
class LocalResponseNormalization(keras.layers.Layer):
    """``b_c = a_c / (k + alpha * sum_{c' in [c - r, c + r]} a_{c'}^2) ** beta``.

    Each activation is divided by the energy of the ``2r + 1`` channels around it
    at the same position (Krizhevsky, Sutskever and Hinton 2012, section 3.3, with
    k = 2, n = 5 (r = 2), alpha = 1e-4, beta = 0.75). The sum is not averaged,
    as in the paper and ``tf.nn.local_response_normalization``.

    Args:
        depth_radius: r, channels on each side.
        bias: k.
        alpha: Scale of the sum of squares.
        beta: Exponent.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        Same as the input.

    Example:

    >>> LocalResponseNormalization()(keras.ops.ones((1, 2, 2, 8))).shape
    (1, 2, 2, 8)
    """

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, int) or depth_radius < 0:
            raise ValueError(f"Argument `depth_radius` must be an integer >= 0. Received: depth_radius={depth_radius}")
        self.depth_radius = depth_radius
        self.bias = number_in(bias, "bias", 0.0, float("inf"))
        self.alpha = number_in(alpha, "alpha", 0.0, float("inf"))
        self.beta = number_in(beta, "beta", 0.0, float("inf"))
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        # The window sum as one matmul with a 0/1 band matrix (c x c), whose gradient is a matmul
        # too. Summing 2r shifted slices of a padded copy measured slower at 16 to 256 channels,
        # forward and even more in training: each slice's gradient writes a full-size zero map.
        total = ops.matmul(ops.square(inputs), ops.cast(self._band(inputs.shape[-1]), inputs.dtype))
        denominator = self.bias + self.alpha * total
        # d ** -beta: a fractional power is the slow part, so the usual betas use square roots.
        if self.beta == 0.75:
            return inputs * ops.rsqrt(denominator) * ops.rsqrt(ops.sqrt(denominator))
        if self.beta == 0.5:
            return inputs * ops.rsqrt(denominator)
        return inputs * ops.exp(-self.beta * ops.log(denominator))

    def _band(self, channels: int) -> np.ndarray:
        """``band[i, j] = 1`` where channels i and j are at most r apart."""
        index = np.arange(channels)
        return (np.abs(index[:, None] - index[None, :]) <= self.depth_radius).astype("float32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}
