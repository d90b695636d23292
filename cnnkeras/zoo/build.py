"""Build a Keras model from a ``model:`` config section and check such a section.

:func:`model_from_config` fills the data's input shape and class count into the
registered builder, passes only the options the config actually set (the
builder keeps its own defaults for the rest), and turns a model that cannot take
the data's input into a :class:`ModelError` that says what to change.
:func:`check_model_config` is the config-time check run by ``load_config``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from ..backend import use_backend
from ..config.errors import suggestion
from ..config.schema import ExperimentConfig, ModelConfig
from ..errors import ModelError
from .common import set_bn_momentum
from .declarative import check_layer_specs
from .registry import _REGISTRY, _ensure_loaded, get_model_info

__all__ = ["check_model_config", "input_shape_error", "model_from_config", "model_options"]

# ModelConfig keys that are not builder options.
_NOT_OPTIONS = ("arch", "head", "input_shape", "loss")


def model_options(config: ModelConfig) -> dict[str, Any]:
    """The builder options a model config sets explicitly (None means 'the model's default')."""
    return {
        key: getattr(config, key)
        for key in config.model_fields_set
        if key not in _NOT_OPTIONS and getattr(config, key) is not None
    }


def check_model_config(config: ExperimentConfig) -> Iterable[tuple[tuple[Any, ...], str]]:
    """Unknown architectures, options the architecture does not take, bad declarative layers."""
    _ensure_loaded()
    model = config.model
    if model.arch not in _REGISTRY:
        return [(("model", "arch"), f"unknown architecture '{model.arch}'; "
                 f"{suggestion(model.arch, list(_REGISTRY), 'choose from')} (see `cnnkeras zoo`)")]
    info = get_model_info(model.arch)
    task = "segmentation" if model.head == "segmentation" else "classification"
    if task not in info.tasks:
        fits = [n for n in sorted(_REGISTRY) if task in _REGISTRY[n].tasks]
        return [(("model", "head"), f"arch '{model.arch}' does {' and '.join(info.tasks)}, not {task} "
                 f"(head {model.head}); {task} models: {', '.join(fits)}")]
    problems = [
        (("model", key), f"arch '{model.arch}' takes no option '{key}' (it takes: {', '.join(info.options)})")
        for key in sorted(model_options(model)) if key not in info.options
    ]
    if model.bn_momentum is not None and "bn_momentum" in info.options:
        problems.extend(_bn_momentum_problems(model, info))
    if "layers" in info.options and model.layers is not None:
        # Declarative layers are checked by building each once: that needs Keras, so the
        # config's backend is chosen first. Zoo names and options need no Keras.
        use_backend(config.backend, tracking_uri=config.tracking.uri)  # (its JAX cache beside the store)
        problems.extend(check_layer_specs(model.layers))
    return problems


def _bn_momentum_problems(model: ModelConfig, info: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``bn_momentum`` on a model that would build no batch norm: its ``batch_norm`` option off
    (set, or the family's default), or declarative layers without a batch-norm layer."""
    if "batch_norm" in info.options:
        default = inspect.signature(info.builder).parameters["batch_norm"].default
        on = model.batch_norm if model.batch_norm is not None else default
        if not on:
            return [(("model", "bn_momentum"), f"arch '{model.arch}' builds no batch norm with batch_norm "
                     f"{'false' if model.batch_norm is not None else 'off (its default)'}: set model.batch_norm: "
                     "true, or remove bn_momentum")]
    if "layers" in info.options and model.layers is not None and not _declares_batch_norm(model.layers):
        return [(("model", "bn_momentum"), "the layers hold no batch norm (a batch_norm layer, or a block with "
                 "batch_norm: true): add one, or remove bn_momentum")]
    return []


def _declares_batch_norm(specs: Any) -> bool:
    """Whether declarative layer specs include a batch-norm layer (or a block that builds one)."""
    for spec in specs if isinstance(specs, list) else []:
        if not isinstance(spec, dict):
            continue
        if "repeat" in spec and _declares_batch_norm(spec.get("layers")):
            return True
        kind = spec.get("type")
        if kind == "batch_norm" or (kind in BN_BLOCKS and spec.get("batch_norm", BN_BLOCKS[kind])):
            return True
    return False


#: Declarative blocks that can build batch norm, with their batch_norm default.
BN_BLOCKS = {"conv_bn_act": False, "inception": False, "residual_basic": True, "residual_bottleneck": True,
             "dense_block": True, "transition": True, "mlpconv": False}


def _builds_at(info: Any, shape: tuple[int, int, int], num_classes: int, head: str, options: dict) -> bool:
    """Whether the builder succeeds on a large image: then a failure on the data's shape means "too small"."""
    try:
        info.builder(input_shape=shape, num_classes=num_classes, head=head, **options)
    except ValueError:
        return False
    return True


def model_from_config(config: ModelConfig, *, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """Build the configured architecture for data of ``input_shape`` with ``num_classes``."""
    info = get_model_info(config.arch)
    if config.input_shape is not None and tuple(config.input_shape) != tuple(input_shape):
        raise ModelError(
            f"model.input_shape {list(config.input_shape)} does not match the data's images {list(input_shape)}; "
            "remove model.input_shape or set data.resize"
        )
    options = model_options(config)
    momentum = options.pop("bn_momentum", None)
    try:
        model = info.builder(input_shape=tuple(input_shape), num_classes=num_classes, head=config.head, **options)
    except ValueError as exc:
        if not _builds_at(info, (224, 224, input_shape[-1]), num_classes, config.head, options):
            raise  # it fails at any size: a bug, not the data's shape
        hint = "set data.resize: [H, W] to a larger size"
        if "small_input" in info.options:
            hint += " or model.small_input: true"
        raise input_shape_error(config.arch, input_shape, exc, hint) from None
    if momentum is not None and not set_bn_momentum(model, momentum):
        raise ModelError(f"model.bn_momentum: '{config.arch}' built no batch-norm layer to set it on; "
                         "set model.batch_norm: true or remove bn_momentum")
    return model


def input_shape_error(arch: str, input_shape: Any, exc: Exception, hint: str) -> ModelError:
    """One line for a model that cannot take an input: Keras' reason, then what to change."""
    return ModelError(f"model '{arch}' cannot take input shape {tuple(input_shape)}: "
                      f"{str(exc).splitlines()[0][:300]}. Hint: {hint}.")
