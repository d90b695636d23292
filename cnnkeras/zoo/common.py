"""Small building helpers shared by the zoo families.

``scaled`` applies a width multiplier to a feature-map count; ``conv_bn_act`` is
the shared conv -> (BN) -> activation block from :mod:`cnnkeras.layers.blocks`.
"""

from __future__ import annotations

from ..layers.blocks import conv_bn_act

__all__ = ["conv_bn_act", "scaled"]


def scaled(channels: int, multiplier: float = 1.0, *, minimum: int = 1) -> int:
    """``channels * multiplier`` rounded, and never below ``minimum``."""
    return max(minimum, int(round(channels * multiplier)))
