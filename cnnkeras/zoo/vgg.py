"""VGG (Simonyan and Zisserman, "Very deep convolutional networks for large-scale
image recognition", ICLR 2015): stacks of 3x3 convolutions and 2x2 max pooling.

Configurations A (VGG-11), B (13), D (16) and E (19); parameter counts at
224x224x3 with 1000 classes match keras.applications VGG16 (138,357,544) and VGG19
(143,667,240) and torchvision VGG-11 (132,863,336) and VGG-13 (133,047,848).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["vgg11", "vgg13", "vgg16", "vgg19"]

CONFIGS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
STAGE_FILTERS = (64, 128, 256, 512, 512)


def _vgg(depth, *, input_shape, num_classes, head, dropout, width_multiplier, batch_norm, small_input, fc_units):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for stage, (convs, filters) in enumerate(zip(CONFIGS[depth], STAGE_FILTERS), start=1):
        for i in range(1, convs + 1):
            x = blocks.conv_bn_act(x, scaled(filters, width_multiplier), 3, batch_norm=batch_norm,
                            use_bias=True, name=f"block{stage}_conv{i}")
        if not small_input or x.shape[1] >= 2:
            x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
    units = (scaled(fc_units, width_multiplier),) * 2
    x = classifier(x, num_classes=num_classes, head=head, units=units, dropout=dropout, flatten=not small_input,
                   name="fc")
    return keras.Model(inputs, x, name=f"vgg{depth}")


def _register(depth: int, params: int, source: str):
    def builder(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.5,
                width_multiplier=1.0, batch_norm=False, small_input=False, fc_units=4096):
        return _vgg(depth, input_shape=input_shape, num_classes=num_classes, head=head, dropout=dropout,
                    width_multiplier=width_multiplier, batch_norm=batch_norm, small_input=small_input,
                    fc_units=fc_units)

    builder.__name__ = builder.__qualname__ = f"vgg{depth}"
    builder.__module__ = __name__
    builder.__doc__ = f"VGG-{depth}: {sum(CONFIGS[depth])} 3x3 conv layers in 5 stages, then 4096-4096 dense."
    return register_model(paper="Simonyan and Zisserman, Very deep convolutional networks, ICLR 2015",
                          params=params, reference=source, min_input=32)(builder)


vgg11 = _register(11, 132_863_336, "torchvision vgg11")
vgg13 = _register(13, 133_047_848, "torchvision vgg13")
vgg16 = _register(16, 138_357_544, "keras.applications.VGG16")
vgg19 = _register(19, 143_667_240, "keras.applications.VGG19")
