"""Custom convolution layers (built on keras.ops) and the registry of layer names.

Importing this package registers every custom layer for declarative configs.
"""

from .registry import LAYERS, get_layer_class, register_layer

__all__ = ["LAYERS", "get_layer_class", "register_layer"]
