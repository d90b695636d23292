"""The Gaussian blur, downsampling and upsampling a Laplacian pyramid is built from (keras.ops).

Burt and Adelson's 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16`` in each direction,
applied per channel. ``reduce`` blurs (mirrored border) and keeps every second pixel:
``(h, w) -> (ceil(h / 2), ceil(w / 2))``. ``expand`` repeats the border pixel, inserts
zeros between pixels, blurs with 4x the kernel (so the inserted zeros are filled by
interpolation and brightness is kept), and crops to the requested size.
"""

from __future__ import annotations

import numpy as np
from keras import ops

TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
KERNEL = np.outer(TAPS, TAPS)  # 5x5, sums to 1


def _blur_valid(x, scale: float):
    channels = x.shape[-1]
    kernel = ops.convert_to_tensor(np.repeat((KERNEL * scale)[:, :, None, None], channels, axis=2), dtype=x.dtype)
    return ops.depthwise_conv(x, kernel, strides=1, padding="valid")


def blur(x):
    """Blur each channel of ``x`` (batch, h, w, c) with the binomial kernel, mirroring the border."""
    return _blur_valid(ops.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric"), 1.0)


def reduce(x):
    """Blur, then keep every second row and column: one level down the Gaussian pyramid."""
    return blur(x)[:, ::2, ::2, :]


def expand(x, height, width):
    """Upsample ``x`` by 2 (zeros between pixels, then 4x the blur), cropped to ``(height, width)``.

    The coarse image gets its border (one pixel repeated) before the zeros go in, so
    the blur near the edge interpolates between real pixels: a constant stays constant.
    """
    x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")  # 1 pixel: the edge repeated
    shape = ops.shape(x)
    channels = x.shape[-1]
    x = ops.reshape(ops.stack([x, ops.zeros_like(x)], axis=2), (shape[0], shape[1] * 2, shape[2], channels))
    x = ops.reshape(ops.stack([x, ops.zeros_like(x)], axis=3), (shape[0], shape[1] * 2, shape[2] * 2, channels))
    # Coarse pixel i sits at 2i + 2 of the padded grid; the valid blur's output j is centred on j + 2.
    return _blur_valid(x, 4.0)[:, :height, :width, :]


def level_sizes(size, levels: int) -> list:
    """Side lengths of the Gaussian levels 0..levels for a side ``size`` (None stays None)."""
    sizes = [size]
    for _ in range(levels):
        sizes.append(None if sizes[-1] is None else (sizes[-1] + 1) // 2)
    return sizes
