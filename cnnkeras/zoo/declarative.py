"""A model written in the config as a list of registered layers.

``arch: sequential`` with ``layers:``, each item either a layer
``{type: conv2d, filters: 32, kernel_size: 3, activation: relu}`` or a repeated
group ``{repeat: 2, layers: [...]}``. Types are names from
:mod:`cnnkeras.layers.registry` only: a config can never import code. After the
listed layers, a 4-D output is flattened and the output head is appended.

Example::

    model:
      arch: sequential
      layers:
        - {repeat: 2, layers: [{type: conv2d, filters: 16, kernel_size: 3, padding: same, activation: relu}]}
        - {type: max_pool, pool_size: 2}
        - {type: flatten}
        - {type: dense, units: 64, activation: relu}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..lazy import lazy_import
from .heads import output_head
from .registry import register_model

keras = lazy_import("keras")
layer_registry = lazy_import("cnnkeras.layers.registry")
activations = lazy_import("cnnkeras.layers.activations")

__all__ = ["check_layer_specs", "expand_layer_specs", "sequential"]

Path = tuple[Any, ...]

DEFAULT_LAYERS: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "max_pool", "pool_size": 2},
    {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "global_avg_pool"},
]


def check_layer_specs(specs: Any, path: Path = ("model", "layers")) -> list[tuple[Path, str]]:
    """Every problem in a declarative layer list, with its key path."""
    if not isinstance(specs, list) or not specs:
        return [(path, "must be a non-empty list of layers")]
    problems: list[tuple[Path, str]] = []
    for index, spec in enumerate(specs):
        where = path + (index,)
        if not isinstance(spec, dict):
            problems.append((where, "each layer must be a mapping like {type: conv2d, filters: 8}"))
        elif "repeat" in spec:
            extra = set(spec) - {"repeat", "layers"}
            if extra:
                problems.append((where + (sorted(extra)[0],), "a repeat group takes only 'repeat' and 'layers'"))
            if not isinstance(spec["repeat"], int) or isinstance(spec["repeat"], bool) or spec["repeat"] < 1:
                problems.append((where + ("repeat",), f"must be a positive integer (got {spec['repeat']!r})"))
            problems.extend(check_layer_specs(spec.get("layers"), where + ("layers",)))
        elif "type" not in spec:
            problems.append((where, "a layer needs a 'type' (or 'repeat' with 'layers')"))
        else:
            args = {k: v for k, v in spec.items() if k != "type"}
            try:
                problems.extend((where + rel, msg) for rel, msg in layer_registry.check_layer_args(spec["type"], args))
            except KeyError as exc:
                problems.append((where + ("type",), exc.args[0]))
    return problems


def expand_layer_specs(specs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten repeat groups into a plain list of layer specs."""
    out: list[dict[str, Any]] = []
    for spec in specs:
        if "repeat" in spec:
            for _ in range(spec["repeat"]):
                out.extend(expand_layer_specs(spec["layers"]))
        else:
            out.append(spec)
    return out


@register_model(paper="(declarative: the layers listed in the config)", input_shape=(28, 28, 1), num_classes=10)
def sequential(*, input_shape=(28, 28, 1), num_classes=10, head="multiclass", layers=None, dropout=0.0):
    """A stack of registered layers from the config, then the output head."""
    specs = expand_layer_specs(layers if layers is not None else DEFAULT_LAYERS)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    counts: dict[str, int] = {}
    for spec in specs:
        kind = spec["type"]
        counts[kind] = counts.get(kind, 0) + 1
        args = {k: v for k, v in spec.items() if k != "type"}
        args.setdefault("name", f"{kind}_{counts[kind]}")
        target = layer_registry.get_layer_class(kind)
        args, after = layer_registry.layer_activation(kind, args)  # activation: prelu is a layer of its own
        if target is keras.layers.Activation and after is not None:
            x = activations.add_activation(x, after, name=args["name"])
            continue
        x = target(x, **args) if layer_registry.is_block(target) else target(**args)(x)
        x = activations.add_activation(x, after, name=f"{args['name']}_{after}" if after else None)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = output_head(x, num_classes=num_classes, head=head)
    return keras.Model(inputs, outputs, name="sequential")
