"""Imports every family module so that their ``@register_model`` variants are registered."""

from . import declarative, lenet  # noqa: F401
