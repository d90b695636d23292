"""Imports every family module so that their ``@register_model`` variants are registered."""

from . import alexnet, declarative, densenet, googlenet, lenet, mobilenet, nin, resnet, vgg  # noqa: F401
