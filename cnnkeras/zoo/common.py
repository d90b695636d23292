"""Small building helpers shared by the zoo families.

``scaled`` applies a width multiplier to a feature-map count. (The shared
conv -> (BN) -> activation block is :func:`cnnkeras.layers.blocks.conv_bn_act`.)
"""

from __future__ import annotations

__all__ = ["scaled"]


def scaled(channels: int, multiplier: float = 1.0, *, minimum: int = 1) -> int:
    """``channels * multiplier`` rounded, and never below ``minimum``."""
    return max(minimum, int(round(channels * multiplier)))
