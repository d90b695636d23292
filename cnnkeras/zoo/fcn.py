"""Fully convolutional networks (Long, Shelhamer and Darrell, "Fully convolutional networks
for semantic segmentation", CVPR 2015) on a VGG-16 backbone.

VGG-16's classifier becomes convolutions (fc6: 7x7 with 4096 maps, fc7: 1x1 with 4096,
both with dropout) and a 1x1 conv scores the classes at 1/32 of the input. FCN-32s
upsamples those scores 32x in one transposed convolution. FCN-16s first upsamples 2x
and adds the scores of pool4 (1/16), then upsamples 16x; FCN-8s adds pool3's scores
(1/8) as well, then upsamples 8x: each skip restores finer detail. The transposed
convolutions start as bilinear interpolation and learn, as in the paper. With 21
classes (PASCAL VOC) FCN-32s has 136,152,917 weights: the Caffe model's VGG-16 convs,
fc6, fc7, score and 64x64 up-convolution (the paper's "134M" leaves out the last);
FCN-16s 134,815,994 and FCN-8s 134,489,759 (smaller final up-convolutions).
The input is padded to a multiple of 32 and the output cropped back, so any size works.
"""

from __future__ import annotations

import numpy as np

from ..lazy import lazy_import
from .common import crop_to, pad_to_multiple, scaled
from .registry import register_model
from .segmentation_head import segmentation_output

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["fcn8s", "fcn16s", "fcn32s"]

PAPER = "Long et al., Fully convolutional networks for semantic segmentation, CVPR 2015 (arXiv:1411.4038)"
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """A (size, size, channels, channels) transposed-conv kernel that interpolates bilinearly, per channel."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = np.ogrid[:size, :size]
    taps = (1 - abs(grid[0] - center) / factor) * (1 - abs(grid[1] - center) / factor)
    kernel = np.zeros((size, size, channels, channels), dtype="float32")
    kernel[:, :, range(channels), range(channels)] = taps[:, :, None]
    return kernel


def _upsample(x, factor, channels, name):
    """Transposed conv by ``factor`` (kernel 2 * factor), initialised to bilinear interpolation."""
    size = 2 * factor
    initial = bilinear_kernel(size, channels)
    return layers.Conv2DTranspose(channels, size, strides=factor, padding="same", use_bias=False, name=name,
                                  kernel_initializer=keras.initializers.Constant(initial))(x)


def _fcn(stride, *, input_shape, num_classes, width_multiplier, fc_units, dropout, batch_norm):
    w = width_multiplier
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, size = pad_to_multiple(inputs, 32)
    pools = []
    for stage, (convs, filters) in enumerate(VGG16, start=1):
        for i in range(1, convs + 1):
            x = blocks.conv_bn_act(x, scaled(filters, w), 3, batch_norm=batch_norm, use_bias=True,
                                   name=f"block{stage}_conv{i}")
        x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
        pools.append(x)
    units = scaled(fc_units, w)
    x = layers.Conv2D(units, 7, padding="same", activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(units, 1, activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    scores = num_classes  # one channel (a sigmoid) for a single foreground class
    x = layers.Conv2D(scores, 1, name="score_fr")(x)
    if stride == 32:
        x = _upsample(x, 32, scores, "upscore32")
    else:
        for pool, factor in ((pools[3], 16), (pools[2], 8))[: 1 if stride == 16 else 2]:
            x = _upsample(x, 2, scores, f"upscore_to{factor}")
            skip = layers.Conv2D(scores, 1, kernel_initializer="zeros", name=f"score_pool{6 - factor // 8}")(pool)
            x = layers.Add(name=f"fuse_pool{6 - factor // 8}")([x, skip])
        x = _upsample(x, stride, scores, f"upscore{stride}")
    x = crop_to(x, size)
    outputs = segmentation_output(x, num_classes=num_classes, project=False)
    return keras.Model(inputs, outputs, name=f"fcn{stride}s")


def _register(stride: int, params: int | None):
    def builder(*, input_shape=(224, 224, 3), num_classes=21, head="segmentation", width_multiplier=1.0,
                fc_units=4096, dropout=0.5, batch_norm=False):
        return _fcn(stride, input_shape=input_shape, num_classes=num_classes, width_multiplier=width_multiplier,
                    fc_units=fc_units, dropout=dropout, batch_norm=batch_norm)

    builder.__name__ = builder.__qualname__ = f"fcn{stride}s"
    builder.__module__ = __name__
    skips = {32: "no skips", 16: "pool4 skip", 8: "pool4 and pool3 skips"}[stride]
    builder.__doc__ = f"FCN-{stride}s: VGG-16 as convolutions, scores upsampled {stride}x ({skips})."
    return register_model(paper=PAPER, params=params, input_shape=(224, 224, 3), num_classes=21,
                          reference=f"the Caffe voc-fcn{stride}s model's layer shapes (computed)",
                          min_input=32, tasks=("segmentation",))(builder)


fcn32s = _register(32, 136_152_917)
fcn16s = _register(16, 134_815_994)
fcn8s = _register(8, 134_489_759)
