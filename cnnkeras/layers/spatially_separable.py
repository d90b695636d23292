"""SpatiallySeparableConv2D: a k x k convolution factored into k x 1 then 1 x k."""

from __future__ import annotations

import keras
from keras import ops

from ._checks import one_of, positive_int
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("spatially_separable_conv2d")
class SpatiallySeparableConv2D(keras.layers.Layer):
    """Convolution with a k x 1 kernel followed by a 1 x k kernel.

    A rank-1 k x k kernel is the outer product of a column and a row (the Sobel
    filter is ``[1, 2, 1]^T [-1, 0, 1]``), so two thin convolutions compute it with
    ``2k`` instead of ``k^2`` multiplications per output and input channel.

    Args:
        filters: Output channels (of both convolutions).
        kernel_size: The k of the k x 1 and 1 x k kernels.
        padding: ``"valid"`` or ``"same"``.
        activation: Applied after the second convolution.
        use_bias: Add a bias after the second convolution.
        kernel_initializer, bias_initializer: Initializers of the kernels and bias.
        kernel_regularizer: Penalty on both kernels.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height', width', filters)`` with ``height' = height - k + 1`` for
        ``"valid"`` and ``height`` for ``"same"``.

    Example:

    >>> layer = SpatiallySeparableConv2D(4, 3, padding="same")
    >>> layer(keras.ops.ones((2, 8, 8, 1))).shape
    (2, 8, 8, 4)
    """

    def __init__(self, filters, kernel_size, padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        self.padding = one_of(padding, ("valid", "same"), "padding")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        k, channels = self.kernel_size, input_shape[-1]
        self.kernel_vertical = self.add_weight(shape=(k, 1, channels, self.filters), name="kernel_vertical",
                                               initializer=self.kernel_initializer,
                                               regularizer=self.kernel_regularizer)
        self.kernel_horizontal = self.add_weight(shape=(1, k, self.filters, self.filters), name="kernel_horizontal",
                                                 initializer=self.kernel_initializer,
                                                 regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight(shape=(self.filters,), name="bias", initializer=self.bias_initializer)
                     if self.use_bias else None)

    def call(self, inputs):
        x = ops.conv(inputs, self.kernel_vertical, padding=self.padding)
        x = ops.conv(x, self.kernel_horizontal, padding=self.padding)
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        shrink = 0 if self.padding == "same" else self.kernel_size - 1
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h - shrink, None if w is None else w - shrink, self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "padding": self.padding, "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias, "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
