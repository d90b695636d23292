"""Feature pyramid networks (Lin et al., "Feature pyramid networks for object detection",
CVPR 2017) over ResNet-18/50, with a Panoptic-FPN semantic head (Kirillov, Girshick,
He and Dollár, "Panoptic feature pyramid networks", CVPR 2019) or a pooled classifier.

The backbone's stage outputs C2..C5 (strides 4, 8, 16, 32; 1, 2, 4, 8 with
``small_input``) each get a lateral 1x1 conv to ``fpn_channels``; a top-down path adds
each level to the nearest-neighbour 2x upsampling of the level above, and a 3x3 conv
smooths the sum: P2..P5, all with ``fpn_channels`` maps, coarse semantics carried down
to fine resolution. ``head: segmentation``: each Pk goes through 3x3 conv (128, group
norm, ReLU) + 2x bilinear upsampling until it reaches P2's scale, the four are summed,
a 1x1 conv scores the classes and a bilinear upsampling returns to the input size.
Other heads: every Pk global-average-pooled and concatenated, then the classifier.
No reference count is published for these exact configurations.
"""

from __future__ import annotations

from ..lazy import lazy_import
from . import resnet
from .common import crop_to, pad_to_multiple
from .heads import output_head
from .registry import register_model
from .segmentation_head import segmentation_output

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
cnn_layers = lazy_import("cnnkeras.layers")

__all__ = ["fpn_resnet18", "fpn_resnet50"]

PAPER = ("Lin et al., Feature pyramid networks, CVPR 2017 (arXiv:1612.03144); semantic head: Kirillov et al., "
         "Panoptic feature pyramid networks, CVPR 2019 (arXiv:1901.02446)")
BACKBONES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}


def _semantic_head(pyramid, num_classes, channels, name="semantic"):
    """Panoptic FPN: every level up to P2's scale (3x3 conv, group norm, ReLU, 2x), summed, scored."""
    target = pyramid[0].shape[1]
    merged = []
    for level, p in enumerate(pyramid, start=2):
        x, steps = p, 0
        while True:
            x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_p{level}_conv{steps}")(x)
            x = layers.GroupNormalization(min(32, channels), name=f"{name}_p{level}_gn{steps}")(x)
            x = layers.Activation("relu", name=f"{name}_p{level}_relu{steps}")(x)
            if x.shape[1] >= target:
                break
            x = cnn_layers.Upsample2D(2, "bilinear", name=f"{name}_p{level}_up{steps}")(x)
            steps += 1
        merged.append(x)
    return layers.Add(name=f"{name}_sum")(merged)


def _fpn(backbone, *, input_shape, num_classes, head, fpn_channels, head_channels, width_multiplier, small_input,
         dropout):
    multiple = 8 if small_input else 32
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    padded, size = pad_to_multiple(inputs, multiple)
    block, depths = BACKBONES[backbone]
    features = resnet.stages(padded, block, depths, width_multiplier=width_multiplier, small_input=small_input)
    laterals = [layers.Conv2D(fpn_channels, 1, name=f"lateral_c{k}")(c) for k, c in enumerate(features, start=2)]
    top_down = [laterals[-1]]
    for k in range(len(laterals) - 2, -1, -1):  # P5 -> P2: upsample the level above and add the lateral
        above = layers.UpSampling2D(2, interpolation="nearest", name=f"topdown_p{k + 3}_up")(top_down[0])
        top_down.insert(0, layers.Add(name=f"topdown_p{k + 2}")([laterals[k], above]))
    pyramid = [layers.Conv2D(fpn_channels, 3, padding="same", name=f"smooth_p{k}")(p)
               for k, p in enumerate(top_down, start=2)]
    if head == "segmentation":
        x = _semantic_head(pyramid, num_classes, head_channels)
        if dropout:
            x = layers.Dropout(dropout, name="semantic_dropout")(x)
        x = layers.Conv2D(num_classes, 1, name="semantic_scores")(x)
        factor = padded.shape[1] // x.shape[1]
        if factor > 1:
            x = cnn_layers.Upsample2D(factor, "bilinear", name="semantic_upsample")(x)
        x = crop_to(x, size)
        outputs = segmentation_output(x, num_classes=num_classes, project=False)
    else:
        pooled = [layers.GlobalAveragePooling2D(name=f"pool_p{k}")(p) for k, p in enumerate(pyramid, start=2)]
        x = layers.Concatenate(name="pyramid_features")(pooled)
        if dropout:
            x = layers.Dropout(dropout, name="head_dropout")(x)
        outputs = output_head(x, num_classes=num_classes, head=head)
    return keras.Model(inputs, outputs, name=f"fpn_{backbone}")


def _register(backbone: str):
    def builder(*, input_shape=(224, 224, 3), num_classes=21, head="segmentation", fpn_channels=256,
                head_channels=128, width_multiplier=1.0, small_input=False, dropout=0.0):
        return _fpn(backbone, input_shape=input_shape, num_classes=num_classes, head=head,
                    fpn_channels=fpn_channels, head_channels=head_channels, width_multiplier=width_multiplier,
                    small_input=small_input, dropout=dropout)

    builder.__name__ = builder.__qualname__ = f"fpn_{backbone}"
    builder.__module__ = __name__
    builder.__doc__ = (f"FPN over {backbone}: lateral 1x1, top-down nearest upsampling, 3x3 smoothing; "
                       "a semantic head (segmentation) or pooled levels (classification).")
    return register_model(paper=PAPER, input_shape=(224, 224, 3), num_classes=21, min_input=32,
                          tasks=("segmentation", "classification"))(builder)


fpn_resnet18 = _register("resnet18")
fpn_resnet50 = _register("resnet50")
