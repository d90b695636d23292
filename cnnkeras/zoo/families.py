"""Imports every family module so that their ``@register_model`` variants are registered."""

from . import alexnet, declarative, densenet, efficientnet, googlenet, lenet, mobilenet, nin, resnet, shufflenet, vgg, xception  # noqa: F401
