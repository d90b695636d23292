"""Training-time augmentation as Keras preprocessing layers in front of the model.

The layers (RandomFlip, RandomTranslation, RandomRotation, RandomZoom) are
active only in training, so the saved model predicts on clean images, and they
run on every backend. Each gets its own seed derived from the experiment seed.
"""

from __future__ import annotations

import keras

from ..config.schema import Augmentation

__all__ = ["augmentation_layers", "with_augmentation"]


def augmentation_layers(config: Augmentation, *, seed: int) -> list[keras.layers.Layer]:
    """The preprocessing layers ``config`` asks for (empty when it asks for none)."""
    out: list[keras.layers.Layer] = []
    if config.flip != "none":
        out.append(keras.layers.RandomFlip(config.flip, seed=seed, name="aug_flip"))
    if config.shift > 0:
        out.append(keras.layers.RandomTranslation(config.shift, config.shift, fill_mode="constant",
                                                  seed=seed + 1, name="aug_shift"))
    if config.rotation > 0:
        out.append(keras.layers.RandomRotation(config.rotation, fill_mode="constant", seed=seed + 2,
                                               name="aug_rotation"))
    if config.zoom > 0:
        out.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed + 3, name="aug_zoom"))
    return out


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
