"""PaddedConv2D: a Conv2D whose 'same' padding uses a chosen border mode."""

from __future__ import annotations

import keras

from ._checks import one_of
from .padding import MODES, pad2d
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("padded_conv2d")
class PaddedConv2D(keras.layers.Conv2D):
    """2D convolution that pads its input with a border mode, then convolves 'valid'.

    The padding is what 'same' would add, ``dilation * (kernel - 1)`` pixels per
    axis split as evenly as possible (the extra one after), but filled with
    ``padding_mode`` (see :class:`Padding2D`) instead of zeros. With stride 1 the
    output keeps the input's height and width.

    Args:
        filters, kernel_size, strides, dilation_rate, activation, use_bias, ...:
            As ``keras.layers.Conv2D`` (``padding`` is not taken).
        padding_mode: ``zero``, ``constant``, ``reflect``, ``symmetric``, ``replicate`` or ``wrap``.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, ceil(height / stride), ceil(width / stride), filters)``.

    Example:

    >>> layer = PaddedConv2D(8, 3, padding_mode="reflect")
    >>> layer(keras.ops.ones((1, 5, 5, 3))).shape
    (1, 5, 5, 8)
    """

    def __init__(self, filters, kernel_size, padding_mode="zero", **kwargs):
        if "padding" in kwargs and kwargs["padding"] != "valid":
            raise ValueError("PaddedConv2D pads by itself; set padding_mode instead of padding. "
                             f"Received: padding={kwargs['padding']}")
        kwargs["padding"] = "valid"
        super().__init__(filters, kernel_size, **kwargs)
        self.padding_mode = one_of(padding_mode, MODES, "padding_mode")

    def _pads(self):
        out = []
        for k, d in zip(self.kernel_size, self.dilation_rate):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return out

    def call(self, inputs):
        return super().call(pad2d(inputs, self._pads(), self.padding_mode))

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self._pads()
        h, w = input_shape[1], input_shape[2]
        padded = (input_shape[0], None if h is None else h + top + bottom, None if w is None else w + left + right,
                  input_shape[3])
        return super().compute_output_shape(padded)

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return {**config, "padding_mode": self.padding_mode}
