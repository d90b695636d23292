"""SegNet (Badrinarayanan, Kendall and Cipolla, "SegNet: a deep convolutional encoder-decoder
architecture for image segmentation", TPAMI 2017).

The encoder is VGG-16's 13 convolutions (with batch norm) in 5 stages; each stage ends
in 2x2 max pooling that remembers where each maximum was
(:class:`cnnkeras.layers.MaxPoolingWithArgmax2D`). The decoder mirrors it: each stage
starts by putting its input back at those positions (:class:`cnnkeras.layers.MaxUnpooling2D`,
zeros elsewhere), and convolutions densify the sparse map. Nothing but the positions
crosses from encoder to decoder, which keeps memory low. ``depth`` (stages) and ``base_width``
shrink it for small images. At 5 stages, width 64, 3 input channels and 11 classes
(CamVid): 29,488,779 parameters (batch norm statistics included), the paper's "29.5M"
(Table 6).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import crop_to, pad_to_multiple
from .registry import register_model
from .segmentation_head import segmentation_output

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")
cnn_layers = lazy_import("cnnkeras.layers")

__all__ = ["segnet"]

CONVS = (2, 2, 3, 3, 3)  # VGG-16's convolutions per stage
WIDTHS = (1, 2, 4, 8, 8)  # times base_width


@register_model(paper="Badrinarayanan et al., SegNet, TPAMI 2017 (arXiv:1511.00561)", params=29_500_000,
                tolerance=0.005, input_shape=(360, 480, 3), num_classes=11,
                reference="the paper's Table 6 (29.5M, rounded)", tasks=("segmentation",))
def segnet(*, input_shape=(360, 480, 3), num_classes=11, head="segmentation", depth=5, base_width=64,
           dropout=0.0):
    """SegNet: a VGG encoder whose pooling positions drive the decoder's max unpooling."""
    if not 1 <= depth <= 5:
        raise ValueError(f"depth (encoder stages) must be 1 to 5. Received: depth={depth}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, size = pad_to_multiple(inputs, 2**depth)
    positions = []
    kw = {"batch_norm": True, "use_bias": False, "bn_momentum": 0.9}  # 0.99 lags behind in short runs
    for s in range(depth):
        for i in range(CONVS[s]):
            x = blocks.conv_bn_act(x, base_width * WIDTHS[s], 3, name=f"enc{s + 1}_conv{i + 1}", **kw)
        x, where = cnn_layers.MaxPoolingWithArgmax2D(2, name=f"enc{s + 1}_pool")(x)
        positions.append(where)
    if dropout:
        x = layers.Dropout(dropout, name="middle_dropout")(x)
    for s in reversed(range(depth)):
        x = cnn_layers.MaxUnpooling2D(2, name=f"dec{s + 1}_unpool")([x, positions[s]])
        for i in range(CONVS[s]):
            last = i == CONVS[s] - 1
            # the last conv of a stage narrows to the next (shallower) stage's width
            filters = base_width * (WIDTHS[s - 1] if last and s > 0 else WIDTHS[s])
            x = blocks.conv_bn_act(x, filters, 3, name=f"dec{s + 1}_conv{i + 1}", **kw)
    x = crop_to(x, size)
    outputs = segmentation_output(x, num_classes=num_classes)
    return keras.Model(inputs, outputs, name="segnet")
