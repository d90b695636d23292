"""Activations chosen by name, including those that are layers with weights (PReLU).

Keras takes an activation by name (``Conv2D(activation="relu")``, ``Activation("tanh")``)
only when it is a plain function. The parametric ReLU of He et al. 2015 ("Delving deep
into rectifiers", ICCV: ``max(0, x) + a * min(0, x)`` with a learned slope ``a`` per
channel) is a layer, ``keras.layers.PReLU``. So wherever cnnkeras lets a config choose an
activation (``model.activation``, a declarative layer's ``activation:``, the blocks), the
name goes through :func:`split_activation`: a plain name stays the layer's own argument,
a layer activation is built after it by :func:`add_activation`, one slope per channel
(shared over height and width) for feature maps and one per unit for dense outputs, as
in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = ["LAYER_ACTIVATIONS", "activation_layer", "add_activation", "split_activation"]


def _prelu(rank: int, name: str | None) -> keras.layers.Layer:
    """One slope per channel: shared over the spatial axes of an ``(N, H, W, C)`` input."""
    return keras.layers.PReLU(shared_axes=list(range(1, rank - 1)) or None, name=name)


#: Activation names that are layers with weights: name -> (input rank, layer name) -> layer.
LAYER_ACTIVATIONS: dict[str, Callable[[int, str | None], keras.layers.Layer]] = {"prelu": _prelu}


def split_activation(activation: Any) -> tuple[Any, str | None]:
    """``(argument for the layer's own activation, layer activation to add after it)``.

    ``"relu"`` -> ``("relu", None)``; ``"prelu"`` -> ``(None, "prelu")``.
    """
    if isinstance(activation, str) and activation.lower() in LAYER_ACTIVATIONS:
        return None, activation.lower()
    return activation, None


def activation_layer(activation: Any, *, rank: int = 4, name: str | None = None) -> keras.layers.Layer:
    """The layer for ``activation``: a PReLU for ``"prelu"``, else ``keras.layers.Activation``."""
    own, layer = split_activation(activation)
    if layer is not None:
        return LAYER_ACTIVATIONS[layer](rank, name)
    return keras.layers.Activation(own, name=name)


def add_activation(x: Any, activation: str | None, name: str | None = None) -> Any:
    """``x`` through the layer activation ``activation`` (from :func:`split_activation`); ``x`` when None."""
    if activation is None:
        return x
    return LAYER_ACTIVATIONS[activation](len(x.shape), name)(x)
