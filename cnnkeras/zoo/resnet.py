"""ResNet (He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016).

ResNet-18/34 stack basic blocks (3x3-3x3), ResNet-50/101 bottlenecks
(1x1-3x3-1x1 x4); both use the 1x1 projection shortcut where the shape changes.
Reference counts at 224x224x3, 1000 classes: torchvision ResNet-18 11,689,512 and
ResNet-34 21,797,672 (trainable), keras.applications ResNet50 25,636,712 and
ResNet101 44,707,176 (which give every conv a bias: ``conv_bias=True``).
"""

from __future__ import annotations

from ..lazy import lazy_import
from .common import scaled
from .heads import classifier
from .registry import register_model

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
blocks = lazy_import("cnnkeras.layers.blocks")

__all__ = ["resnet18", "resnet34", "resnet50", "resnet101", "stages"]

PAPER = "He et al., Deep residual learning for image recognition, CVPR 2016"


def stages(x, block, depths, *, width_multiplier=1.0, batch_norm=True, small_input=False, conv_bias=False):
    """The stem and residual stages on tensor ``x``: the outputs of stages 2..5 (C2..C5), for FPN too."""
    w = width_multiplier
    stem = {"batch_norm": batch_norm, "use_bias": conv_bias or not batch_norm, "bn_epsilon": 1.001e-5}
    if small_input:  # CIFAR-style stem: 3x3 stride 1, no max pooling
        x = blocks.conv_bn_act(x, scaled(64, w), 3, name="conv1", **stem)
    else:
        x = blocks.conv_bn_act(x, scaled(64, w), 7, strides=2, name="conv1", **stem)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    residual = getattr(blocks, f"residual_{block}")  # "basic" or "bottleneck"
    outputs = []
    for stage, depth in enumerate(depths):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            x = residual(x, scaled(64 * 2**stage, w), stride=stride, batch_norm=batch_norm, conv_bias=conv_bias,
                         name=f"stage{stage + 2}_block{i + 1}")
        outputs.append(x)
    return outputs


def _resnet(name, block, depths, *, input_shape, num_classes, head, dropout, width_multiplier, batch_norm,
            small_input, conv_bias):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = stages(inputs, block, depths, width_multiplier=width_multiplier, batch_norm=batch_norm,
               small_input=small_input, conv_bias=conv_bias)[-1]
    x = classifier(x, num_classes=num_classes, head=head, dropout=dropout)
    return keras.Model(inputs, x, name=name)


def _variant(name, block, depths, params, source, reference_kwargs=None, count="total"):
    def builder(*, input_shape=(224, 224, 3), num_classes=1000, head="multiclass", dropout=0.0,
                width_multiplier=1.0, batch_norm=True, small_input=False, conv_bias=False):
        return _resnet(name, block, depths, input_shape=input_shape, num_classes=num_classes, head=head,
                       dropout=dropout, width_multiplier=width_multiplier, batch_norm=batch_norm,
                       small_input=small_input, conv_bias=conv_bias)

    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = __name__
    builder.__doc__ = f"ResNet-{name[6:]}: {block} blocks {list(depths)} with 1x1 projection shortcuts."
    return register_model(paper=PAPER, params=params, reference=source, reference_kwargs=reference_kwargs,
                          min_input=32, count=count)(builder)


resnet18 = _variant("resnet18", "basic", (2, 2, 2, 2), 11_689_512, "torchvision resnet18 (trainable)",
                   count="trainable")
resnet34 = _variant("resnet34", "basic", (3, 4, 6, 3), 21_797_672, "torchvision resnet34 (trainable)",
                   count="trainable")
resnet50 = _variant("resnet50", "bottleneck", (3, 4, 6, 3), 25_636_712, "keras.applications.ResNet50",
                    {"conv_bias": True})
resnet101 = _variant("resnet101", "bottleneck", (3, 4, 23, 3), 44_707_176, "keras.applications.ResNet101",
                     {"conv_bias": True})
