"""Custom convolution layers (built on keras.ops) and the registry of layer names.

Importing this package registers every custom layer, for declarative configs
and for loading saved models.
"""

from . import blocks
from .channel_shuffle import ChannelShuffle
from .laplacian_pyramid import LaplacianPyramid
from .laplacian_reconstruct import LaplacianReconstruct
from .local_response_norm import LocalResponseNormalization
from .max_pool_argmax import MaxPoolingWithArgmax2D
from .max_unpooling import MaxUnpooling2D
from .mixed_pooling import MixedPooling2D
from .padded_conv import PaddedConv2D
from .padding import Padding2D
from .random_padded_crop import RandomPaddedCrop
from .registry import LAYERS, get_layer_class, register_layer
from .spatial_pyramid_pooling import SpatialPyramidPooling2D
from .spatially_separable import SpatiallySeparableConv2D
from .squeeze_excitation import SqueezeExcitation
from .upsample import Upsample2D

__all__ = [
    "LAYERS",
    "blocks",
    "ChannelShuffle",
    "LaplacianPyramid",
    "LaplacianReconstruct",
    "LocalResponseNormalization",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "MixedPooling2D",
    "Padding2D",
    "PaddedConv2D",
    "RandomPaddedCrop",
    "SpatialPyramidPooling2D",
    "SpatiallySeparableConv2D",
    "SqueezeExcitation",
    "Upsample2D",
    "get_layer_class",
    "register_layer",
]
