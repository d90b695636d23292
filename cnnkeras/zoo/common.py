"""Small building helpers shared by the zoo families.

``scaled`` applies a width multiplier to a feature-map count; ``set_bn_momentum`` sets the
moving statistics' momentum of every batch-norm layer of a built model (``model.bn_momentum``). ``pad_to_multiple`` and
``crop_to`` let an encoder-decoder take any input size: the input is zero-padded
to a multiple of the total downsampling, and the output cropped back. (The shared
conv -> (BN) -> activation block is :func:`cnnkeras.layers.blocks.conv_bn_act`.)
"""

from __future__ import annotations

from ..lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["batch_norm_layers", "crop_to", "pad_to_multiple", "scaled", "set_bn_momentum"]


def scaled(channels: int, multiplier: float = 1.0, *, minimum: int = 1) -> int:
    """``channels * multiplier`` rounded, and never below ``minimum``."""
    return max(minimum, int(round(channels * multiplier)))


def pad_to_multiple(x, multiple: int):
    """Zero-pad (N, H, W, C) at the bottom and right to multiples of ``multiple``; returns (x, (H, W))."""
    height, width = int(x.shape[1]), int(x.shape[2])
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        x = keras.layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name="pad_to_multiple")(x)
    return x, (height, width)


def crop_to(x, size: tuple[int, int]):
    """Crop (N, H', W', C) at the bottom and right back to ``size`` (undoes :func:`pad_to_multiple`)."""
    extra_h, extra_w = int(x.shape[1]) - size[0], int(x.shape[2]) - size[1]
    if extra_h or extra_w:
        x = keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name="crop_to_input")(x)
    return x


def set_bn_momentum(model, momentum: float) -> int:
    """Set ``momentum`` on every ``BatchNormalization`` layer of a built model (nested models too).

    Keras reads a batch-norm layer's ``momentum`` when it traces its training step, and
    saves it in the layer's config, so setting it after building (before compiling) is
    the same as building with it, for every zoo family without threading an option
    through each builder. Returns how many layers were set.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1). Received: bn_momentum={momentum}")
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def batch_norm_layers(model) -> list:
    """Every ``BatchNormalization`` layer of a model, nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]
