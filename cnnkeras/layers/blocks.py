"""Functional building blocks of the classic CNNs: x -> block(x, ...) -> y.

Blocks are functions that add ordinary (serializable) Keras layers to a
functional graph, as keras.applications does, so a model keeps every primitive
layer visible to ``cnnkeras inspect`` (shapes, MACs, receptive field) and saves
without custom block classes. Each is registered with :func:`register_block` so a
declarative config can use it as ``{type: residual_basic, filters: 64}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from .activations import add_activation, split_activation

__all__ = ["BLOCKS", "conv_bn_act", "dense_block", "inception_block", "mlpconv", "register_block",
           "residual_basic", "residual_bottleneck", "transition"]

BLOCKS: dict[str, Callable[..., Any]] = {}


def register_block(name: str):
    """Make a block function usable as ``{type: name}`` in declarative configs."""

    def decorate(fn):
        BLOCKS[name] = fn
        return fn

    return decorate


def _auto(name: str | None, kind: str) -> str:
    """``name``, or ``<kind><n>`` numbered by Keras (per kind, reset by ``clear_session``), so a
    model's layer names do not depend on what the process built before."""
    return name or f"{kind}{keras.backend.get_uid(kind)}"


@register_block("conv_bn_act")
def conv_bn_act(x, filters: int, kernel_size=3, *, strides=1, padding="same", activation="relu",
                batch_norm: bool = False, use_bias: bool | None = None, dilation_rate=1, groups: int = 1,
                bn_epsilon: float = 1e-3, bn_momentum: float = 0.99, name: str | None = None):
    """Conv2D -> (BatchNormalization) -> activation. Shape (N,H,W,C) -> (N,H',W',filters).

    Without an explicit ``use_bias``, the conv has a bias only when there is no
    batch norm (BN's beta replaces it). ``bn_momentum`` is the moving statistics'
    momentum: Keras' 0.99 lags behind the weights in a run of a few epochs at a high
    learning rate (validation accuracy near chance after epoch 1); 0.9 keeps up.
    """
    name = _auto(name, "conv")
    bias = (not batch_norm) if use_bias is None else use_bias
    own, after = split_activation(activation)  # prelu is a layer (one slope per channel), after the conv
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=bias,
                      dilation_rate=dilation_rate, groups=groups,
                      activation=None if batch_norm else own, name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, name=f"{name}_bn")(x)
        if own:
            x = layers.Activation(own, name=f"{name}_act")(x)
    return add_activation(x, after, name=f"{name}_{after}")


@register_block("inception")
def inception_block(x, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int, *,
                    batch_norm: bool = False, branch3_kernel: int = 5, name: str | None = None):
    """GoogLeNet's four-path block (Szegedy et al. 2015): 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1.

    Output channels: ``c1 + c3 + c5 + pool_proj``; height and width are kept.
    ``branch3_kernel=3`` reproduces torchvision's GoogLeNet, whose "5x5" path uses 3x3.
    """
    name = _auto(name, "inception")
    eps = 1e-3
    kw = {"batch_norm": batch_norm, "bn_epsilon": eps}
    b1 = conv_bn_act(x, c1, 1, name=f"{name}_1x1", **kw)
    b2 = conv_bn_act(conv_bn_act(x, c3_reduce, 1, name=f"{name}_3x3_reduce", **kw), c3, 3, name=f"{name}_3x3", **kw)
    b3 = conv_bn_act(conv_bn_act(x, c5_reduce, 1, name=f"{name}_5x5_reduce", **kw), c5, branch3_kernel,
                     name=f"{name}_5x5", **kw)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv_bn_act(b4, pool_proj, 1, name=f"{name}_pool_proj", **kw)
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def _shortcut(x, filters: int, stride: int, *, batch_norm: bool, conv_bias: bool, name: str, eps: float):
    """Identity, or the 1x1 projection (He et al. 2016, option B) when the shape changes."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    s = layers.Conv2D(filters, 1, strides=stride, use_bias=conv_bias, name=f"{name}_proj")(x)
    return layers.BatchNormalization(epsilon=eps, name=f"{name}_proj_bn")(s) if batch_norm else s


@register_block("residual_basic")
def residual_basic(x, filters: int, *, stride: int = 1, batch_norm: bool = True, conv_bias: bool = False,
                   name: str | None = None):
    """ResNet's basic block: 3x3 -> 3x3, plus the shortcut. (N,H,W,C) -> (N,H/s,W/s,filters)."""
    name = _auto(name, "basic")
    eps = 1e-5
    kw = {"batch_norm": batch_norm, "use_bias": conv_bias or not batch_norm, "bn_epsilon": eps}
    shortcut = _shortcut(x, filters, stride, batch_norm=batch_norm, conv_bias=conv_bias or not batch_norm,
                         name=name, eps=eps)
    y = conv_bn_act(x, filters, 3, strides=stride, name=f"{name}_conv1", **kw)
    y = conv_bn_act(y, filters, 3, activation=None, name=f"{name}_conv2", **kw)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


@register_block("residual_bottleneck")
def residual_bottleneck(x, filters: int, *, stride: int = 1, expansion: int = 4, batch_norm: bool = True,
                        conv_bias: bool = False, name: str | None = None):
    """ResNet's bottleneck: 1x1 (stride) -> 3x3 -> 1x1 x expansion, plus the shortcut.

    (N,H,W,C) -> (N,H/s,W/s,filters*expansion). The stride sits on the first 1x1,
    as in the original ResNet v1 and keras.applications.
    """
    name = _auto(name, "bottleneck")
    eps = 1.001e-5
    kw = {"batch_norm": batch_norm, "use_bias": conv_bias or not batch_norm, "bn_epsilon": eps}
    shortcut = _shortcut(x, filters * expansion, stride, batch_norm=batch_norm,
                         conv_bias=conv_bias or not batch_norm, name=name, eps=eps)
    y = conv_bn_act(x, filters, 1, strides=stride, name=f"{name}_conv1", **kw)
    y = conv_bn_act(y, filters, 3, name=f"{name}_conv2", **kw)
    y = conv_bn_act(y, filters * expansion, 1, activation=None, name=f"{name}_conv3", **kw)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _bn_relu_conv(x, filters: int, kernel: int, *, name: str, batch_norm: bool):
    if batch_norm:
        x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return layers.Conv2D(filters, kernel, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)


@register_block("dense_block")
def dense_block(x, num_layers: int, growth_rate: int = 32, *, bottleneck: bool = True, batch_norm: bool = True,
                name: str | None = None):
    """DenseNet's dense block (Huang et al. 2017): each layer's k new maps are concatenated to all before.

    (N,H,W,C) -> (N,H,W,C + num_layers*growth_rate). With ``bottleneck`` each layer
    is BN-ReLU-1x1(4k)-BN-ReLU-3x3(k) (DenseNet-B).
    """
    name = _auto(name, "dense")
    for i in range(1, num_layers + 1):
        y = x
        if bottleneck:
            y = _bn_relu_conv(y, 4 * growth_rate, 1, name=f"{name}_{i}_1", batch_norm=batch_norm)
        y = _bn_relu_conv(y, growth_rate, 3, name=f"{name}_{i}_2", batch_norm=batch_norm)
        x = layers.Concatenate(name=f"{name}_{i}_concat")([x, y])
    return x


@register_block("transition")
def transition(x, compression: float = 0.5, *, batch_norm: bool = True, name: str | None = None):
    """DenseNet's transition: BN-ReLU-1x1 conv (channels x compression) - 2x2 average pool."""
    name = _auto(name, "transition")
    x = _bn_relu_conv(x, int(x.shape[-1] * compression), 1, name=name, batch_norm=batch_norm)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


@register_block("mlpconv")
def mlpconv(x, filters: int, kernel_size=3, *, strides=1, padding="same", batch_norm: bool = False,
            activation="relu", name: str | None = None):
    """NiN's mlpconv (Lin, Chen and Yan 2014): a k x k conv and two 1x1 convs, a small MLP per pixel."""
    name = _auto(name, "mlpconv")
    kw = {"batch_norm": batch_norm, "activation": activation}
    x = conv_bn_act(x, filters, kernel_size, strides=strides, padding=padding, name=f"{name}_conv", **kw)
    x = conv_bn_act(x, filters, 1, name=f"{name}_mlp1", **kw)
    return conv_bn_act(x, filters, 1, name=f"{name}_mlp2", **kw)
