"""Layer names a declarative config may use, mapped to Keras layer classes.

Configs never name Python objects: ``{type: conv2d, filters: 32}`` looks up
``conv2d`` here. Keras' own layers are registered under short snake_case names;
cnnkeras' custom layers and blocks register themselves with :func:`register_layer`.
:func:`check_layer_args` validates a spec's arguments against the class's
constructor signature and by constructing it once, so mistakes surface at
``validate`` time with the nearest valid argument name.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import keras

from ..config.errors import suggestion
from ..errors import UnknownName
from .activations import split_activation
from .blocks import BLOCKS

__all__ = ["LAYERS", "check_layer_args", "get_layer_class", "layer_activation", "layer_arguments", "register_layer"]

LAYERS: dict[str, type[keras.layers.Layer]] = {
    "conv2d": keras.layers.Conv2D,
    "conv2d_transpose": keras.layers.Conv2DTranspose,
    "separable_conv2d": keras.layers.SeparableConv2D,
    "depthwise_conv2d": keras.layers.DepthwiseConv2D,
    "dense": keras.layers.Dense,
    "max_pool": keras.layers.MaxPooling2D,
    "avg_pool": keras.layers.AveragePooling2D,
    "global_avg_pool": keras.layers.GlobalAveragePooling2D,
    "global_max_pool": keras.layers.GlobalMaxPooling2D,
    "adaptive_avg_pool": keras.layers.AdaptiveAveragePooling2D,
    "adaptive_max_pool": keras.layers.AdaptiveMaxPooling2D,
    "flatten": keras.layers.Flatten,
    "dropout": keras.layers.Dropout,
    "spatial_dropout": keras.layers.SpatialDropout2D,
    "batch_norm": keras.layers.BatchNormalization,
    "layer_norm": keras.layers.LayerNormalization,
    "activation": keras.layers.Activation,
    "prelu": keras.layers.PReLU,
    "zero_padding": keras.layers.ZeroPadding2D,
    "upsampling": keras.layers.UpSampling2D,
    "resizing": keras.layers.Resizing,
}

# Arguments every Keras layer takes through **kwargs.
_BASE_ARGS = ("name", "dtype", "trainable")


def register_layer(name: str):
    """Class decorator: make a layer usable as ``{type: name}`` in declarative configs."""

    def decorate(cls):
        if name in LAYERS and LAYERS[name] is not cls:
            raise ValueError(f"A layer named {name!r} is already registered. Received: name={name}")
        LAYERS[name] = cls
        return cls

    return decorate


def _ensure_loaded() -> None:
    """Import the package, whose modules register the custom layers (here, not at the top:
    those modules import this registry, so a top-level import would be circular)."""
    from .. import layers  # noqa: F401


def get_layer_class(name: str) -> Any:
    """The layer class, or block function, registered as ``name``; a KeyError names the closest one."""
    _ensure_loaded()
    if name in BLOCKS:
        return BLOCKS[name]
    if name not in LAYERS:
        raise UnknownName(f"unknown layer type '{name}'; {suggestion(name, list(LAYERS) + list(BLOCKS), 'choose from')}")
    return LAYERS[name]


def is_block(obj: Any) -> bool:
    """True for a block function (called as ``block(x, **args)``), False for a layer class."""
    return not isinstance(obj, type)


def layer_arguments(cls: Any) -> list[str]:
    """Constructor argument names of a layer class (plus name/dtype/trainable), or a block's arguments."""
    if is_block(cls):
        return [p for p in inspect.signature(cls).parameters if p != "x"]
    params = inspect.signature(cls.__init__).parameters
    names = [p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
    return names + [a for a in _BASE_ARGS if a not in names]


def layer_activation(name: str, args: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A declarative layer's arguments without a layer activation (``activation: prelu``), and that
    activation, to be added after the layer (:mod:`cnnkeras.layers.activations`). Blocks take it themselves."""
    cls = get_layer_class(name)
    if is_block(cls) or "activation" not in args:
        return args, None
    own, after = split_activation(args["activation"])
    if after is None:
        return args, None
    if cls is keras.layers.Activation:
        return {k: v for k, v in args.items() if k != "activation"}, after
    return {**args, "activation": own}, after


def check_layer_args(name: str, args: dict[str, Any]) -> Iterable[tuple[tuple[Any, ...], str]]:
    """Problems with ``{type: name, **args}``, as (relative key path, message)."""
    args, after = layer_activation(name, args)
    cls = get_layer_class(name)
    if cls is keras.layers.Activation and after is not None and not set(args) - set(_BASE_ARGS):
        return []  # {type: activation, activation: prelu}: the PReLU layer itself
    valid = layer_arguments(cls)
    problems = [((key,), f"{cls.__name__} takes no argument '{key}'; {suggestion(key, valid, 'valid arguments')}")
                for key in args if key not in valid]
    if problems:
        return problems
    if is_block(cls):
        required = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.name != "x" and p.default is inspect.Parameter.empty and p.name not in args]
        return [((), f"block {name} needs {', '.join(required)}")] if required else []
    try:
        cls(**args)
    except (TypeError, ValueError) as exc:
        return [((), f"invalid arguments for {name} ({cls.__name__}): {exc}")]
    return []
