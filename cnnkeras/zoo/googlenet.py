"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015).

Nine inception blocks (four parallel paths: 1x1, 1x1->3x3, 1x1->5x5, pool->1x1)
between a conv stem and global average pooling. Without auxiliary heads. With
``batch_norm=True`` and ``branch3_kernel=3`` it is torchvision's GoogLeNet
(6,624,904 trainable parameters at 224x224x3, 1000 classes); torchvision's "5x5"
path uses a 3x3 kernel, a known deviation kept there for its weights.
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["googlenet"]

# (c1, c3_reduce, c3, c5_reduce, c5, pool_proj), with "M" for a 3x3/2 max pooling
BLOCKS = [
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128)), "M",
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
]


@register_model(paper="Szegedy et al., Going deeper with convolutions, CVPR 2015", params=6_624_904,
                reference="torchvision googlenet, aux_logits=False (trainable parameters)", count="trainable",
                reference_kwargs={"batch_norm": True, "branch3_kernel": 3}, min_input=32)
def googlenet(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.2, width_multiplier=1.0,
              batch_norm=True, small_input=False, branch3_kernel=5):
    """GoogLeNet (Inception v1): conv stem, 9 four-path inception blocks, global average pooling."""
    w = width_multiplier
    kw = {"batch_norm": batch_norm, "bn_epsilon": 1e-3}
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if small_input:
        x = blocks.conv_bn_act(inputs, scaled(192, w), 3, name="stem", **kw)
    else:
        x = blocks.conv_bn_act(inputs, scaled(64, w), 7, strides=2, name="conv1", **kw)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        x = blocks.conv_bn_act(x, scaled(64, w), 1, name="conv2", **kw)
        x = blocks.conv_bn_act(x, scaled(192, w), 3, name="conv3", **kw)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    pools = 0
    for block in BLOCKS:
        if block == "M":
            pools += 1
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{2 + pools}")(x)
            continue
        name, channels = block
        x = blocks.inception_block(x, *(scaled(c, w) for c in channels), batch_norm=batch_norm,
                            branch3_kernel=branch3_kernel, name=f"inception{name}")
    x = classifier(x, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(inputs, x, name="googlenet")
