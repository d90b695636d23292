"""Imports every family module so that their ``@register_model`` variants are registered."""

from . import (  # noqa: F401
    alexnet,
    declarative,
    densenet,
    efficientnet,
    fcn,
    fpn,
    googlenet,
    lenet,
    mobilenet,
    nin,
    resnet,
    segnet,
    shufflenet,
    unet,
    vgg,
    xception,
)
