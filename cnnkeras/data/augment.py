"""Training-time augmentation as Keras preprocessing layers.

Classification: the layers (RandomFlip, RandomTranslation, RandomRotation,
RandomZoom, cnnkeras' RandomPaddedCrop, then RandomBrightness and RandomContrast) sit
in front of the model, active only in training, so the saved model predicts on clean
images, and they run on every backend. Each gets its own seed derived from the
experiment seed.

Segmentation: a mask must move with its image, so the same layers run on the
training batches instead (:class:`AugmentedBatches`). The geometric ones run on the
image and its mask stacked as channels: one random transform for both,
nearest-neighbour sampling (a class index is never blended) and zeros (black,
background) where the image moved away. The colour ones (brightness, contrast) then
run on the image alone: a mask's class indices are not colours.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ..config.schema import Augmentation
from ..layers.random_padded_crop import RandomPaddedCrop

__all__ = ["AugmentedBatches", "augmentation_layers", "colour_layers", "geometric_layers", "with_augmentation"]


def augmentation_layers(config: Augmentation, *, seed: int,
                        interpolation: str = "bilinear") -> list[keras.layers.Layer]:
    """The preprocessing layers ``config`` asks for, geometric then colour (empty when it asks for none)."""
    return geometric_layers(config, seed=seed, interpolation=interpolation) + colour_layers(config, seed=seed)


def colour_layers(config: Augmentation, *, seed: int) -> list[keras.layers.Layer]:
    """Brightness and contrast, on pixels in [0, 1] (``normalization: scale``, checked by the config)."""
    out: list[keras.layers.Layer] = []
    if config.brightness > 0:
        out.append(keras.layers.RandomBrightness(config.brightness, value_range=(0.0, 1.0), seed=seed + 5,
                                                 name="aug_brightness"))
    if config.contrast > 0:
        out.append(keras.layers.RandomContrast(config.contrast, value_range=(0.0, 1.0), seed=seed + 6,
                                               name="aug_contrast"))
    return out


def geometric_layers(config: Augmentation, *, seed: int,
                     interpolation: str = "bilinear") -> list[keras.layers.Layer]:
    """Flip, shift, rotation, zoom and crop: the layers that move pixels (and so masks with them)."""
    out: list[keras.layers.Layer] = []
    if config.flip != "none":
        out.append(keras.layers.RandomFlip(config.flip, seed=seed, name="aug_flip"))
    if config.shift > 0:
        out.append(keras.layers.RandomTranslation(config.shift, config.shift, fill_mode="constant",
                                                  interpolation=interpolation, seed=seed + 1, name="aug_shift"))
    if config.rotation > 0:
        out.append(keras.layers.RandomRotation(config.rotation, fill_mode="constant", interpolation=interpolation,
                                               seed=seed + 2, name="aug_rotation"))
    if config.zoom > 0:
        out.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", interpolation=interpolation,
                                           seed=seed + 3, name="aug_zoom"))
    if config.crop > 0:
        out.append(RandomPaddedCrop(config.crop, seed=seed + 4, name="aug_crop"))
    return out


class AugmentedBatches(keras.utils.PyDataset):
    """Training batches of images (N, H, W, C) and masks (N, H, W), each pair moved by one random transform.

    Epoch e visits the examples in a permutation drawn from ``seed + e`` (or in order
    without ``shuffle``); the transforms come from the layers' own seeded generators,
    so a config and seed give the same batches on every run.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, config: Augmentation, *, batch_size: int, seed: int,
                 shuffle: bool = True):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.layers = geometric_layers(config, seed=seed, interpolation="nearest")
        self.colour = colour_layers(config, seed=seed)
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng(self.seed + self.epoch).permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        channels = self.x.shape[-1]
        stacked = np.concatenate([self.x[rows], self.y[rows][..., None].astype(self.x.dtype)], axis=-1)
        for layer in self.layers:
            stacked = layer(stacked, training=True)
        images = stacked[..., :channels]
        for layer in self.colour:  # the image alone: a mask's class indices are not colours
            images = layer(images, training=True)
        stacked = keras.ops.convert_to_numpy(stacked)
        return keras.ops.convert_to_numpy(images), np.rint(stacked[..., channels]).astype(self.y.dtype)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


def with_augmentation(model: keras.Model, config: Augmentation, *, seed: int) -> keras.Model:
    """``model`` behind the augmentation layers; ``model`` itself when none is asked for.

    Input and output shapes are those of ``model``.
    """
    layers = augmentation_layers(config, seed=seed)
    if not layers:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, model(x), name=f"augmented_{model.name}")
