"""Small building helpers shared by the zoo families.

``conv_bn_act`` is the conv -> (batch norm) -> activation unit nearly every
family uses; ``scaled`` applies a width multiplier to a feature-map count.
"""

from __future__ import annotations

from typing import Any

from keras import layers

__all__ = ["conv_bn_act", "scaled"]


def scaled(channels: int, multiplier: float = 1.0, *, minimum: int = 1) -> int:
    """``channels * multiplier`` rounded, and never below ``minimum``."""
    return max(minimum, int(round(channels * multiplier)))


def conv_bn_act(
    x: Any,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    strides: int = 1,
    padding: str = "same",
    activation: str | None = "relu",
    batch_norm: bool = False,
    name: str,
    **conv_kwargs: Any,
) -> Any:
    """Conv2D, then BatchNormalization when asked, then the activation.

    With batch norm the convolution has no bias (BN's beta replaces it).
    Input (N, H, W, C) -> output (N, H', W', filters) with H' = floor((H - F + 2P) / S) + 1.
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=not batch_norm,
                      activation=None if batch_norm else activation, name=name, **conv_kwargs)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        if activation:
            x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x
