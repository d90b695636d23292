"""One registry of architectures, by name, like timm's ``@register_model``.

A family module defines builder functions and decorates each variant with
:func:`register_model`; the function's name is the model's name. The decorator
records the paper, the reference parameter count (checked by a test) and the
input/classes that count refers to. Builders take keyword-only options; which
options a model accepts is read from its signature, so a config that sets an
option the model does not take is rejected with the list of those it does.

Example::

    @register_model(paper="LeCun et al. 1998", params=61_706, input_shape=(28, 28, 1), num_classes=10)
    def lenet5(*, input_shape=(28, 28, 1), num_classes=10, head="multiclass", activation="tanh"):
        ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config.errors import suggestion
from ..errors import UnknownName
from .common import set_bn_momentum  # (Keras is imported lazily there: the registry stays Keras-free)

__all__ = ["ModelInfo", "build_model", "get_model_info", "list_models", "register_model"]

#: Options every builder receives from the data, not from ``model:`` keys.
DATA_OPTIONS = ("input_shape", "num_classes", "head")
#: Options applied to a built model rather than passed to its builder (families with batch norm only).
MODEL_OPTIONS = ("bn_momentum",)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture variant."""

    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    reference_params: int | None
    input_shape: tuple[int, int, int]
    num_classes: int
    reference_source: str = ""
    reference_kwargs: dict[str, Any] = field(default_factory=dict)
    min_input: int = 1
    #: "total" (Keras' count_params, BN statistics included) or "trainable" (torchvision's count)
    count: str = "total"
    #: What it predicts: ("classification",), ("segmentation",) or both (FPN)
    tasks: tuple[str, ...] = ("classification",)
    #: Relative tolerance of the reference count (0: exact; for a paper's rounded figure)
    tolerance: float = 0.0
    #: Whether the family builds batch normalization (always, or when its ``batch_norm`` option is on)
    batch_norm: bool = True

    @property
    def options(self) -> tuple[str, ...]:
        """Keyword options the model takes, besides input_shape, num_classes and head: the builder's,
        and ``bn_momentum`` (set on every batch-norm layer once built) for a family with batch norm."""
        params = inspect.signature(self.builder).parameters
        own = tuple(p for p in params if p not in DATA_OPTIONS)
        return own + (MODEL_OPTIONS if self.batch_norm else ())

    @property
    def builder_options(self) -> tuple[str, ...]:
        """The options the builder function itself takes (``options`` less those applied after building)."""
        return tuple(o for o in self.options if o not in MODEL_OPTIONS)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.builder) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    paper: str,
    params: int | None = None,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    reference: str = "",
    reference_kwargs: dict[str, Any] | None = None,
    min_input: int = 1,
    count: str = "total",
    tasks: tuple[str, ...] = ("classification",),
    tolerance: float = 0.0,
    batch_norm: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder under its function name.

    Args:
        paper: The paper that defines the architecture.
        params: The reference parameter count for ``input_shape`` and
            ``num_classes`` (with ``reference_kwargs``), checked by a test.
        input_shape: The input the reference count refers to; also the default.
        num_classes: The classes the reference count refers to.
        reference: Where the reference count comes from (keras.applications, torchvision, paper).
        reference_kwargs: Builder options the reference count needs.
        min_input: Smallest spatial input size the model takes with its defaults.
        count: ``"total"`` when the reference counts every weight (keras.applications),
            ``"trainable"`` when it counts trainable ones only (torchvision).
        tasks: What the model predicts: ``("classification",)`` (a pooled head),
            ``("segmentation",)`` (a class per pixel, ``head: segmentation``) or both.
        tolerance: How far (relative) the count may be from ``params`` when the
            reference is a paper's rounded figure ("29.5M"); 0 means exactly.
        batch_norm: Whether the family builds batch normalization (always, or behind its
            ``batch_norm`` option): only then does it take ``bn_momentum``.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered. Received: name={name}")
        family = builder.__module__.rsplit(".", 1)[-1]
        _REGISTRY[name] = ModelInfo(
            name, builder, family, paper, params, (*input_shape,), num_classes, reference,
            dict(reference_kwargs or {}), min_input, count, tuple(tasks), tolerance, batch_norm,
        )
        return builder

    return decorate


def _ensure_loaded() -> None:
    from . import families  # noqa: F401  (registers every family; they import this module: not at the top)


def list_models() -> list[str]:
    """Every registered architecture name, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; a KeyError names the closest valid one."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownName(f"unknown architecture '{name}'; {suggestion(name, list(_REGISTRY), 'choose from')}") from None


def build_model(name: str, **options: Any) -> Any:
    """Build the registered model ``name`` with keyword ``options`` (``bn_momentum`` included)."""
    info = get_model_info(name)
    momentum = options.pop("bn_momentum", None)
    if momentum is not None and "bn_momentum" not in info.options:
        raise TypeError(f"{name} takes no option 'bn_momentum' (it builds no batch norm). Received: "
                        f"bn_momentum={momentum}")
    model = info.builder(**options)
    if momentum is not None and not set_bn_momentum(model, momentum):
        raise ValueError(f"{name} built no batch-norm layer for bn_momentum to set (is batch_norm off?). "
                         f"Received: bn_momentum={momentum}")
    return model
