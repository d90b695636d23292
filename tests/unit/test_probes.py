"""The probes overfitting studies use: label noise, a per-class subset, random crop, colour, PReLU."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkeras
from cnnkeras.config import ConfigError, config_from_dict
from cnnkeras.config.schema import Augmentation, DataConfig
from cnnkeras.data.augment import AugmentedBatches, with_augmentation
from cnnkeras.data.dataset import load_dataset
from cnnkeras.data.probes import noisy_labels, per_class_indices
from cnnkeras.layers import RandomPaddedCrop
from cnnkeras.zoo.build import model_from_config

labels = st.lists(st.integers(0, 9), min_size=1, max_size=400).map(lambda v: np.array(v, dtype="int64"))


@settings(max_examples=80, deadline=None)
@given(y=labels, n=st.integers(1, 60), seed=st.integers(0, 2**31))
def test_per_class_keeps_at_most_n_of_each_class_sorted_and_seeded(y, n, seed):
    index = per_class_indices(y, n, seed)
    assert np.all(np.diff(index) > 0)
    for label in np.unique(y):
        assert np.sum(y[index] == label) == min(n, np.sum(y == label))
    assert np.array_equal(index, per_class_indices(y, n, seed))


@settings(max_examples=80, deadline=None)
@given(y=labels, fraction=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_label_noise_touches_exactly_the_drawn_fraction(y, fraction, seed):
    noisy = noisy_labels(y, fraction, 10, seed)
    assert noisy.dtype == y.dtype and noisy.shape == y.shape and noisy.min() >= 0 and noisy.max() < 10
    assert np.sum(noisy != y) <= int(round(fraction * len(y)))  # a redrawn label can be the true one
    assert np.array_equal(noisy, noisy_labels(y, fraction, 10, seed))
    if fraction == 0:
        assert np.array_equal(noisy, y)


def test_random_labels_keep_a_tenth_right_and_are_uniform():
    y = np.repeat(np.arange(10), 2_000)
    noisy = noisy_labels(y, 1.0, 10, 0)
    assert np.mean(noisy == y) == pytest.approx(0.1, abs=0.01)
    assert np.all(np.abs(np.bincount(noisy, minlength=10) / len(y) - 0.1) < 0.01)
    half = noisy_labels(y, 0.5, 10, 0)
    assert np.mean(half != y) == pytest.approx(0.5 * 0.9, abs=0.01)


def test_probes_change_the_training_split_only():
    base = DataConfig(source="digits", validation_split=0.25)
    clean = load_dataset(base, seed=1)
    noisy = load_dataset(base.model_copy(update={"label_noise": 0.4}), seed=1)
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    for split in ("x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(noisy, split), getattr(clean, split))
    assert np.mean(noisy.y_train != clean.y_train) == pytest.approx(0.4 * 0.9, abs=0.04)
    small = load_dataset(base.model_copy(update={"per_class": 20}), seed=1)
    assert np.bincount(small.y_train).tolist() == [20] * 10
    np.testing.assert_array_equal(small.y_val, clean.y_val)  # the same validation set at every size
    np.testing.assert_array_equal(small.x_test, clean.x_test)


@pytest.mark.parametrize("raw, message", [
    ({"data": {"source": "digit_scenes", "label_noise": 0.2}, "model": {"arch": "unet", "head": "segmentation"}},
     "data.label_noise needs a class per image"),
    ({"data": {"per_class": 5}, "model": {"arch": "lenet5", "head": "regression"}},
     "data.per_class needs a class per image"),
    ({"data": {"normalization": "standardize", "augmentation": {"brightness": 0.2}}},
     "brightness and contrast work on pixels in [0, 1]: they need normalization: scale"),
    ({"data": {"label_noise": 1.5}}, "data.label_noise: input should be less than or equal to 1"),
    ({"data": {"augmentation": {"crop": -1}}}, "data.augmentation.crop: input should be greater than or equal to 0"),
])
def test_probe_mistakes_are_config_errors(raw, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"name": "p", **raw})
    assert any(message in str(issue).lower() or message in str(issue) for issue in info.value.issues), \
        info.value.issues


def test_random_padded_crop_shifts_each_image_by_whole_pixels_and_is_the_identity_in_inference():
    x = np.random.default_rng(0).random((16, 10, 10, 1)).astype("float32") + 1.0  # no zero pixel
    layer = RandomPaddedCrop(3, seed=0)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    shifts = set()
    for image, moved in zip(x[..., 0], out[..., 0]):
        found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if np.array_equal(moved, np.pad(image, 3)[3 + dy:13 + dy, 3 + dx:13 + dx])]
        assert found, "every output is the padded image cropped at whole-pixel offsets"
        shifts.add(found[0])
    assert len(shifts) > 4  # each image gets its own offsets
    with pytest.raises(ValueError, match="Received: padding=0"):
        RandomPaddedCrop(0)


def test_crop_and_colour_augment_in_training_only_and_the_model_loads_safely(tmp_path):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    config = Augmentation(crop=2, brightness=0.3, contrast=0.3)
    model = with_augmentation(inner, config, seed=4)
    assert [layer.name for layer in model.layers[1:-1]] == ["aug_crop", "aug_brightness", "aug_contrast"]
    x = np.random.default_rng(1).random((4, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)),
                               keras.ops.convert_to_numpy(inner(x)), rtol=1e-6)
    augmented = keras.ops.convert_to_numpy(model.layers[1](x, training=True))
    assert not np.allclose(augmented, x)
    model.save(tmp_path / "m.keras")
    loaded = cnnkeras.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)),
                               keras.ops.convert_to_numpy(model(x, training=False)), rtol=1e-6)


def test_segmentation_batches_crop_masks_with_images_and_colour_the_images_only():
    data = load_dataset(DataConfig(source="digit_scenes", scenes={"count": 50, "size": 32, "digits": (1, 1)},
                                   validation_split=0.2), seed=3)
    geometric = AugmentedBatches(data.x_train, data.y_train, Augmentation(crop=4), batch_size=8, seed=5)
    for index in range(len(geometric)):
        x, y = geometric[index]
        np.testing.assert_array_equal(y > 0, x[..., 0] > 0.5)  # the mask moved with its image
    coloured = AugmentedBatches(data.x_train, data.y_train, Augmentation(brightness=0.4, contrast=0.4),
                                batch_size=8, seed=5)
    for index in range(len(coloured)):
        x, y = coloured[index]
        rows = coloured.order[index * 8:(index + 1) * 8]
        np.testing.assert_array_equal(y, data.y_train[rows])  # masks are never coloured
        assert not np.allclose(x, data.x_train[rows]) and x.min() >= 0 and x.max() <= 1


def test_prelu_works_wherever_an_activation_is_chosen(tmp_path):
    lenet = model_from_config(config_from_dict({"name": "p", "model": {"arch": "lenet5", "activation": "prelu"}}).model,
                              input_shape=(28, 28, 1), num_classes=10)
    slopes = {layer.name: tuple(layer.weights[0].shape) for layer in lenet.layers
              if isinstance(layer, keras.layers.PReLU)}
    # one slope per channel for feature maps (shared over height and width), one per unit for dense layers
    assert slopes == {"c1_prelu": (1, 1, 6), "c3_prelu": (1, 1, 16), "f5_prelu": (120,), "f6_prelu": (84,)}
    declarative = config_from_dict({"name": "p", "model": {"arch": "sequential", "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "prelu"},
        {"type": "activation", "activation": "prelu"},
        {"type": "conv_bn_act", "filters": 4, "activation": "prelu", "batch_norm": True},
        {"type": "prelu"},
        {"type": "flatten"}, {"type": "dense", "units": 5, "activation": "PReLU"}]}})
    model = model_from_config(declarative.model, input_shape=(8, 8, 1), num_classes=3)
    assert sum(isinstance(layer, keras.layers.PReLU) for layer in model.layers) == 5
    model.save(tmp_path / "p.keras")
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(cnnkeras.load_model(tmp_path / "p.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5)
    with pytest.raises(ConfigError, match="model.layers"):
        config_from_dict({"name": "p", "model": {"arch": "sequential", "layers": [
            {"type": "conv2d", "filters": 4, "activation": "preluu"}]}})


def test_probes_and_the_training_sample_on_a_streamed_split_equal_the_in_memory_ones(tmp_path):
    """Data larger than memory: the per-class subset stays a view read on demand, and label noise and the
    gap's sample are the in-memory ones, value for value."""
    from cnnkeras.config import config_from_dict
    from cnnkeras.data.arrays import SplitView
    from cnnkeras.training.fit import gap_sample, targets_of

    from .test_streaming import class_folder

    root = class_folder(tmp_path / "imgs", per_class=20)
    splits = {}
    for storage in ("memory", "stream"):
        config = config_from_dict({"name": "p", "seed": 3, "data": {
            "source": "image_folder", "path": str(root), "storage": storage, "validation_split": 0.25,
            "per_class": 8, "label_noise": 0.5}})
        data = load_dataset(config.data, seed=config.seed)
        splits[storage] = (data, gap_sample(data, targets_of(data, config), config))
    (memory, memory_sample), (stream, stream_sample) = splits["memory"], splits["stream"]
    assert isinstance(stream.x_train, SplitView) and len(stream.x_train) == 24
    np.testing.assert_array_equal(stream.x_train[np.arange(24)], memory.x_train)
    np.testing.assert_array_equal(stream.y_train, memory.y_train)
    for got, want in zip(stream_sample, memory_sample):
        np.testing.assert_array_equal(got, want)
    assert len(memory_sample[0]) == len(memory.x_val)  # the default sample: the validation split's size
