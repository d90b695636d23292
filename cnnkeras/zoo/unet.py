"""U-Net (Ronneberger, Fischer and Brox, "U-Net: convolutional networks for biomedical
image segmentation", MICCAI 2015).

A contracting path (two 3x3 convs, then 2x2 max pooling, the width doubling at each
of ``depth`` levels), a bottleneck, and an expanding path that upsamples, concatenates
the contracting path's map of the same size (the skip connection that restores what
pooling lost) and applies two 3x3 convs. The paper's network (depth 4, width 64, 1 input
channel, 2 classes, transposed 2x2 up-convolutions) has 31,030,658 weights; this one
pads its convs ("same"), so the output has the input's size (any size: the input is
padded to a multiple of ``2 ** depth`` and the output cropped back).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import crop_to, pad_to_multiple, scaled
from .registry import register_model
from .segmentation_head import segmentation_output

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")
cnn_layers = lazy_import("cnnkeras.layers")

__all__ = ["unet"]

UPSAMPLING = ("transpose", "nearest", "bilinear", "bicubic")


def _double_conv(x, filters, batch_norm, name):
    for i in (1, 2):
        x = blocks.conv_bn_act(x, filters, 3, batch_norm=batch_norm, bn_momentum=0.9, name=f"{name}_conv{i}")
    return x


@register_model(paper="Ronneberger et al., U-Net, MICCAI 2015 (arXiv:1505.04597)", params=31_030_658,
                input_shape=(572, 572, 1), num_classes=2, reference="the paper's Figure 1 (computed)",
                reference_kwargs={"batch_norm": False}, tasks=("segmentation",))
def unet(*, input_shape=(572, 572, 1), num_classes=2, head="segmentation", depth=4, base_width=64,
         upsampling="transpose", batch_norm=True, dropout=0.0):
    """U-Net: contracting and expanding paths joined by skip connections (depth, base_width, upsampling)."""
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}. Received: upsampling={upsampling}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, size = pad_to_multiple(inputs, 2**depth)
    skips = []
    for level in range(depth):
        x = _double_conv(x, scaled(base_width * 2**level, 1.0), batch_norm, f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = _double_conv(x, base_width * 2**depth, batch_norm, "bottom")
    if dropout:
        x = layers.Dropout(dropout, name="bottom_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_width * 2**level
        if upsampling == "transpose":  # the paper's 2x2 up-convolution, halving the channels
            x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        else:  # interpolate, then a 1x1 conv halves the channels
            x = cnn_layers.Upsample2D(2, upsampling, name=f"up{level + 1}_upsample")(x)
            x = layers.Conv2D(filters, 1, name=f"up{level + 1}_reduce")(x)
        x = layers.Concatenate(name=f"up{level + 1}_skip")([skips[level], x])
        x = _double_conv(x, filters, batch_norm, f"up{level + 1}")
    x = crop_to(x, size)
    outputs = segmentation_output(x, num_classes=num_classes)
    return keras.Model(inputs, outputs, name="unet")
