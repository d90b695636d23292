"""ShuffleNet v2 (Ma, Zhang, Zheng and Sun, "ShuffleNet V2: practical guidelines for
efficient CNN architecture design", ECCV 2018).

A 3x3 stride-2 stem and max pooling, three stages of units, a 1x1 conv to 1024 (2048
at 2.0x) and the classifier. A unit splits its channels in two: one half passes
through, the other goes 1x1 -> 3x3 depthwise -> 1x1; the halves are concatenated and
shuffled (:class:`cnnkeras.layers.ChannelShuffle`, 2 groups) so the next unit mixes
them. A stage's first unit downsamples both halves (stride-2 depthwise) and doubles
the channels. Every conv is bias-free with batch norm, as in torchvision:
``shufflenet_v2`` (1.0x) has 2,278,604 trainable parameters at 224x224x3, 1000
classes (torchvision.models.shufflenet_v2_x1_0).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")
cnn_layers = lazy_import("cnnkeras.layers")

__all__ = ["shufflenet_v2"]

#: Output channels of the stem, the three stages and the last 1x1 conv, per width.
CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024), 1.5: (24, 176, 352, 704, 1024),
            2.0: (24, 244, 488, 976, 2048)}
REPEATS = (4, 8, 4)
BN = {"bn_epsilon": 1e-5, "bn_momentum": 0.9}


def _depthwise_bn(x, stride, name):
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)


def _pointwise(x, channels, name):
    return blocks.conv_bn_act(x, channels, 1, batch_norm=True, use_bias=False, name=name, **BN)


def _unit(x, out_channels, stride, name):
    """One unit: (N, H, W, C) -> (N, H / stride, W / stride, out_channels)."""
    half = out_channels // 2
    if stride == 1:  # half the channels pass through, the other half is transformed
        keep, branch = x[..., :half], x[..., half:]
    else:  # both halves see the whole input, downsampled
        keep = _pointwise(_depthwise_bn(x, stride, f"{name}_left_dw"), half, f"{name}_left_pw")
        branch = x
    branch = _pointwise(branch, half, f"{name}_pw1")
    branch = _depthwise_bn(branch, stride, f"{name}_dw")
    branch = _pointwise(branch, half, f"{name}_pw2")
    x = layers.Concatenate(name=f"{name}_concat")([keep, branch])
    return cnn_layers.ChannelShuffle(2, name=f"{name}_shuffle")(x)


@register_model(paper="Ma et al., ShuffleNet V2, ECCV 2018 (arXiv:1807.11164)", params=2_278_604,
                reference="torchvision.models.shufflenet_v2_x1_0", count="trainable", min_input=32)
def shufflenet_v2(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.0,
                  width_multiplier=1.0, small_input=False):
    """ShuffleNet v2: channel split, depthwise units and channel shuffle (width 0.5x, 1.0x, 1.5x or 2.0x)."""
    if width_multiplier not in CHANNELS:
        raise ValueError(f"width_multiplier must be one of {sorted(CHANNELS)} for ShuffleNet v2. "
                         f"Received: width_multiplier={width_multiplier}")
    stem, *stages, last = CHANNELS[width_multiplier]
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = blocks.conv_bn_act(inputs, stem, 3, strides=1 if small_input else 2, batch_norm=True, use_bias=False,
                           name="conv1", **BN)
    if not small_input:  # 32x32 inputs keep their resolution for the stages
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (channels, repeats) in enumerate(zip(stages, REPEATS), start=2):
        for i in range(repeats):
            x = _unit(x, channels, 2 if i == 0 else 1, f"stage{stage}_{i + 1}")
    x = _pointwise(x, last, "conv5")
    x = classifier(x, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(inputs, x, name="shufflenet_v2")
