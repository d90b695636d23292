"""What a model computes, layer by layer: shapes, parameters, MACs, receptive field.

:func:`inspect` walks a functional Keras model in topological order and returns a
pandas DataFrame with, per layer, the output shape, the parameter count, the
multiply-accumulates for one image, and the receptive field and cumulative
stride (the "jump") in input pixels. Receptive fields follow the forward rule

    jump_out = jump_in * stride
    rf_out   = rf_in + (k_eff - 1) * jump_in,   k_eff = dilation * (k - 1) + 1

which is the same as the notes' top-down recursion RF(i) = S(i) (RF(i+1) - 1) + K(i).
Global layers (flatten, dense, global pooling, SPP) see the whole image: "global".

:func:`zoo_table` builds every registered architecture for one input and tabulates
parameters and MACs.
"""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np
import pandas as pd

from ..config import load_config
from ..config.schema import ExperimentConfig
from ..data.dataset import load_dataset
from ..errors import ModelError
from ..layers import (
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    MixedPooling2D,
    SpatiallySeparableConv2D,
    SpatialPyramidPooling2D,
    Upsample2D,
)
from .build import input_shape_error, model_from_config
from .registry import build_model, get_model_info, list_models

__all__ = ["check_input_size", "inspect", "layer_macs", "model_for", "zoo_table"]

GLOBAL = math.inf


def _shape(tensor_or_list: Any) -> tuple:
    t = tensor_or_list[0] if isinstance(tensor_or_list, (list, tuple)) else tensor_or_list
    return tuple(t.shape)


def _producers(layer: keras.layers.Layer) -> list[str]:
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    names = []
    for tensor in inputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.append(history[0].name)
    return names


def layer_macs(layer: keras.layers.Layer, in_shape: tuple, out_shape: tuple) -> int:
    """Multiply-accumulates of ``layer`` for one example (batch dimension ignored)."""
    L = keras.layers
    if isinstance(layer, L.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin, dm = in_shape[-1], layer.depth_multiplier
        return out_shape[1] * out_shape[2] * cin * dm * (kh * kw + layer.filters)
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return out_shape[1] * out_shape[2] * in_shape[-1] * layer.depth_multiplier * kh * kw
    if isinstance(layer, L.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return in_shape[1] * in_shape[2] * in_shape[-1] * layer.filters * kh * kw
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        return out_shape[1] * out_shape[2] * layer.filters * kh * kw * in_shape[-1] // layer.groups
    if isinstance(layer, SpatiallySeparableConv2D):
        k, f = layer.kernel_size, layer.filters
        mid_h = in_shape[1] if layer.padding == "same" else in_shape[1] - k + 1
        mid_w = in_shape[2]
        return mid_h * mid_w * in_shape[-1] * f * k + out_shape[1] * out_shape[2] * f * f * k
    if isinstance(layer, L.Dense):
        leading = math.prod(d for d in in_shape[1:-1]) if len(in_shape) > 2 else 1
        return leading * in_shape[-1] * layer.units
    return 0


def _field_step(layer: keras.layers.Layer, rf: tuple[float, float], jump: tuple[float, float]):
    """(rf, jump) per axis after ``layer``, given those of its input."""
    L = keras.layers
    if rf[0] == GLOBAL or isinstance(layer, (L.Flatten, L.Dense, L.GlobalAveragePooling2D, L.GlobalMaxPooling2D,
                                              SpatialPyramidPooling2D, L.AdaptiveAveragePooling2D,
                                              L.AdaptiveMaxPooling2D)):
        return (GLOBAL, GLOBAL), jump
    if isinstance(layer, L.Conv2DTranspose):
        s = layer.strides
        return (tuple(r + (k - 1) * j / st for r, k, j, st in zip(rf, layer.kernel_size, jump, s)),
                tuple(j / st for j, st in zip(jump, s)))
    if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)):
        kernel, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
    elif isinstance(layer, SpatiallySeparableConv2D):
        kernel, strides, dilation = (layer.kernel_size,) * 2, (1, 1), (1, 1)
    elif isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D, MixedPooling2D)):
        kernel, strides, dilation = layer.pool_size, layer.strides, (1, 1)
    elif isinstance(layer, MaxPoolingWithArgmax2D):
        kernel = strides = (layer.pool_size,) * 2
        dilation = (1, 1)
    elif isinstance(layer, (L.UpSampling2D, Upsample2D)):
        scale = layer.size if isinstance(layer, L.UpSampling2D) else layer.scale
        return rf, tuple(j / s for j, s in zip(jump, scale))
    elif isinstance(layer, MaxUnpooling2D):
        return rf, tuple(j / layer.pool_size for j in jump)
    else:
        return rf, jump
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    return (tuple(r + (k - 1) * j for r, k, j in zip(rf, k_eff, jump)),
            tuple(j * s for j, s in zip(jump, strides)))


def _fmt(pair: tuple[float, float]) -> str:
    if pair[0] == GLOBAL:
        return "global"
    values = [int(v) if float(v).is_integer() else round(v, 2) for v in pair]
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _unwrap(model: keras.Model) -> keras.Model:
    """The model behind augmentation layers (inspect the network, not the preprocessing)."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[-1] if len(inner) == 1 and model.name.startswith("augmented_") else model


def inspect(target: Any, *, input_shape: tuple[int, int, int] | None = None,
            num_classes: int | None = None) -> pd.DataFrame:
    """One row per layer: type, output shape, params, MACs, receptive field, cumulative stride.

    ``target`` is a Keras model, a registered architecture name, an experiment
    YAML file (its model on its data's input) or a loaded config. The
    DataFrame's ``attrs`` hold the totals (``params``, ``macs``).
    """
    model = _unwrap(_resolve(target, input_shape, num_classes))
    field: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            field[layer.name] = ((1.0, 1.0), (1.0, 1.0))
            rows.append({"layer": layer.name, "type": "InputLayer", "output_shape": _shape(layer.output)[1:],
                         "params": 0, "macs": 0, "receptive_field": "1", "stride": "1",
                         "rf": 1.0, "jump": 1.0})
            continue
        parents = [field[name] for name in _producers(layer) if name in field] or [((1.0, 1.0), (1.0, 1.0))]
        rf, jump = max(parents, key=lambda p: p[0][0])
        rf, jump = _field_step(layer, rf, jump)
        field[layer.name] = (rf, jump)
        in_shape, out_shape = _shape(layer.input), _shape(layer.output)
        rows.append({
            "layer": layer.name, "type": type(layer).__name__, "output_shape": out_shape[1:],
            "params": int(layer.count_params()), "macs": int(layer_macs(layer, in_shape, out_shape)),
            "receptive_field": _fmt(rf), "stride": _fmt(jump), "rf": rf[0], "jump": jump[0],
        })
    frame = pd.DataFrame(rows)
    frame.attrs = {"name": model.name, "params": int(model.count_params()), "macs": int(frame["macs"].sum()),
                   "input_shape": tuple(model.input_shape[1:])}
    return frame


def _resolve(target: Any, input_shape, num_classes) -> keras.Model:
    if isinstance(target, keras.Model):
        return target
    if isinstance(target, (str, os.PathLike)) and (str(target).endswith((".yaml", ".yml")) or os.path.isfile(target)):

        target = load_config(target)
    if isinstance(target, ExperimentConfig):
        if input_shape is None or num_classes is None:
            data = load_dataset(target.data, seed=target.seed)
            input_shape, num_classes = input_shape or data.input_shape, num_classes or data.num_classes
        return model_from_config(target.model, input_shape=input_shape, num_classes=num_classes)
    if input_shape is not None:
        check_input_size(str(target), tuple(input_shape), num_classes)
    try:
        return model_for(str(target), input_shape=input_shape, num_classes=num_classes)
    except ValueError as exc:
        if input_shape is None:
            raise  # the model's own reference input: a bug, not the user's shape
        smallest = get_model_info(str(target)).min_input
        raise input_shape_error(str(target), input_shape, exc,
                                f"a larger --input (at least {smallest}x{smallest})") from None


def check_input_size(arch: str, input_shape: tuple[int, ...], num_classes: int | None) -> None:
    """Refuse, before building, an input no model can take or one whose weights would not fit in memory.

    A model's parameter count grows with the input only through layers that see the whole
    image (a dense layer after flatten), as ``a + b * H * W + c * (H + W)`` for the valid
    convolutions and poolings before it. Three builds at small sizes (``s x s``, ``2s x 2s``,
    ``s x 2s``) give ``a``, ``b`` and ``c``; the weights' bytes at the asked size are then
    estimated without building it (``inspect lenet5 --input 100000,100000,3`` took 27 s to
    run out of memory).
    """
    if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
        raise ModelError(f"--input takes three sizes of at least 1 (height, width, channels). "
                         f"Received: input={','.join(map(str, input_shape))}")
    info = get_model_info(arch)
    h, w, c = (int(d) for d in input_shape)
    if h * w <= 4 * info.input_shape[0] * info.input_shape[1]:
        return  # around the model's own size: built directly
    side = 32 * math.ceil(max(info.min_input, 8) / 32)
    sizes = [(side, side), (2 * side, 2 * side), (side, 2 * side)]
    counts = []
    for size in sizes:
        keras.backend.clear_session()
        counts.append(float(model_for(arch, input_shape=(*size, c), num_classes=num_classes).count_params()))
    keras.backend.clear_session()
    a, b, k = np.linalg.solve(np.array([[1.0, y * x, y + x] for y, x in sizes]), np.array(counts))
    params = max(counts[0], a + b * h * w + k * (h + w))
    needed = 4 * params  # float32 weights
    free = _available_memory()
    if free is not None and needed > 0.5 * free:
        raise ModelError(f"model '{arch}' at {h}x{w}x{c} would hold about {params:,.0f} parameters "
                         f"({needed / 2**30:,.1f} GiB of weights), more than half of this machine's "
                         f"{free / 2**30:,.1f} GiB free; try a smaller --input")


def _available_memory() -> float | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def model_for(arch: str, *, input_shape: tuple[int, int, int] | None = None, num_classes: int | None = None,
              **options: Any) -> keras.Model:
    """Build a registered architecture, switching on its small-input stem when the input needs it."""
    info = get_model_info(arch)
    shape = tuple(input_shape or info.input_shape)
    if "small_input" in info.options and "small_input" not in options and min(shape[:2]) < info.min_input:
        options["small_input"] = True
    return build_model(arch, input_shape=shape, num_classes=num_classes or info.num_classes, **options)


def zoo_table(*, input_shape: tuple[int, int, int] | None = None, num_classes: int | None = None) -> pd.DataFrame:
    """Every registered architecture with its parameters and MACs for one input (or its reference input)."""
    rows = []
    for name in list_models():
        info = get_model_info(name)
        shape = (*(input_shape or info.input_shape),)
        row: dict[str, Any] = {"arch": name, "family": info.family, "tasks": "+".join(info.tasks), "input": shape,
                               "params": None, "macs": None,
                               "reference_params": info.reference_params, "paper": info.paper, "note": ""}
        try:
            keras.backend.clear_session()
            frame = inspect(model_for(name, input_shape=shape, num_classes=num_classes))
            row.update(params=frame.attrs["params"], macs=frame.attrs["macs"])
        except (ValueError, TypeError) as exc:
            row["note"] = f"cannot take {shape}: {str(exc).splitlines()[0][:80]}"
        rows.append(row)
    keras.backend.clear_session()
    return pd.DataFrame(rows)
