"""Data sources, splits and the clear errors bad data gets."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cnnkeras.config.schema import DataConfig
from cnnkeras.data import load_dataset
from cnnkeras.errors import DataError

from ..conftest import MNIST


def test_digits_split_is_stratified_seeded_and_scaled():
    data = load_dataset(DataConfig(validation_split=0.25, test_split=0.2), seed=3)
    again = load_dataset(DataConfig(validation_split=0.25, test_split=0.2), seed=3)
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    np.testing.assert_array_equal(data.y_val, again.y_val)
    # stratified: every class is in the validation split in about the same share
    shares = np.bincount(data.y_val) / len(data.y_val)
    assert shares.min() > 0.08 and shares.max() < 0.12


def test_classes_subset_and_resize():
    data = load_dataset(DataConfig(classes=[3, 8], subset=200, resize=(16, 16)), seed=0)
    assert data.num_classes == 2 and set(np.unique(data.y_train)) == {0, 1}
    assert data.input_shape == (16, 16, 1)
    assert len(data.x_train) + len(data.x_val) == 200


def test_standardize_uses_training_statistics():
    data = load_dataset(DataConfig(normalization="standardize"), seed=0)
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3


@pytest.mark.skipif(not MNIST.exists(), reason="shared MNIST copy not present")
def test_real_mnist_npz():
    data = load_dataset(DataConfig(source="npz", path=str(MNIST), subset=1000, test_subset=500), seed=0)
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (800, 200, 500)


def test_npz_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=np.array([0]))
    with pytest.raises(DataError, match="pickled Python objects, which cnnkeras never loads"):
        load_dataset(DataConfig(source="npz", path=str(path)), seed=0)


def test_a_pickle_renamed_npz_is_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"x_train": 1}))
    with pytest.raises(DataError, match="pickle"):
        load_dataset(DataConfig(source="npz", path=str(path)), seed=0)


def test_a_text_file_named_npz_is_called_what_it_is(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("name: x\n")
    with pytest.raises(DataError, match=r"is not an .npz archive .* but a file that starts with b'name: x\\n'"):
        load_dataset(DataConfig(source="npz", path=str(path)), seed=0)


def test_missing_npz(tmp_path):
    with pytest.raises(DataError, match="data.path: file not found"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "none.npz")), seed=0)


def test_npz_without_keras_layout(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, images=np.zeros((4, 8, 8)))
    with pytest.raises(DataError, match="lacks x_train, y_train"):
        load_dataset(DataConfig(source="npz", path=str(path)), seed=0)


def test_keras_dataset_offline_says_how_to_use_a_local_copy():
    with pytest.raises(DataError, match=r"source: npz, path: /path/to/fashion_mnist.npz"):
        load_dataset(DataConfig(source="fashion_mnist"), seed=0)


def _image_folder(root, classes=("cat", "dog"), per_class=6, size=(12, 10)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    data = load_dataset(DataConfig(source="image_folder", path=str(root), validation_split=0.25, test_split=0.25),
                        seed=0)
    assert data.input_shape == (12, 10, 1) and data.num_classes == 2
    assert data.class_names == ["cat", "dog"]


def test_image_folder_corrupt_image_is_named(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png") as caught:
        load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0)
    assert "0x" not in str(caught.value) and "BytesIO" not in str(caught.value)  # no Python object reprs
    assert "not an image" in str(caught.value)


def test_an_image_folder_of_one_class_is_refused_before_training(tmp_path):
    root = _image_folder(tmp_path / "imgs", classes=("cat",))
    with pytest.raises(DataError, match=r"the training images hold 1 class \(\[0\]\): a classifier needs at least 2"):
        load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0)


def test_image_folder_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no class subfolders"):
        load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "empty")), seed=0)
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "empty")), seed=0)


def test_labels_out_of_range_for_the_binary_head():
    from cnnkeras.runner import check_labels

    with pytest.raises(DataError, match=r"binary head needs labels 0 and 1.*data.classes: \[a, b\]"):
        check_labels(np.arange(10), head="binary", num_outputs=1)


def _npz(tmp_path, name="d.npz", **arrays):
    rng = np.random.default_rng(0)
    data = {"x_train": rng.random((40, 8, 8)).astype("float32"), "y_train": np.arange(40) % 4,
            "x_test": rng.random((12, 8, 8)).astype("float32"), "y_test": np.arange(12) % 4}
    data.update(arrays)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **data)
    return str(path)


@pytest.mark.parametrize("change, message", [
    ({"x_train": np.full((40, 8, 8), np.nan, dtype="float32")}, "the training images hold 2560 non-finite"),
    ({"x_test": np.where(np.eye(8, dtype=bool), np.inf, 0.5)[None].repeat(12, 0).astype("float32")},
     "the test images hold 96 non-finite"),
    ({"y_test": None}, "test images without test labels"),
    ({"y_test": np.arange(12) % 5}, "test labels [4] never occur in training"),
    ({"y_train": np.zeros(40, dtype=int)}, "the training images hold 1 class ([0])"),
    ({"y_test": (np.arange(12) % 4) + 0.5}, "test labels must be integers"),
    ({"y_test": np.arange(11) % 4}, "the test split has 12 images but 11 labels"),
    ({"y_test": -(np.arange(12) % 4)}, "test labels must be >= 0"),
    ({"x_test": np.zeros((12, 9, 9), dtype="float32")}, "test images are (9, 9, 1), training images (8, 8, 1)"),
])
def test_every_split_is_checked_before_anything_trains(tmp_path, change, message):
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(source="npz", path=_npz(tmp_path, **change), normalization="none"), seed=0)
    assert message in str(info.value)


def test_a_subset_larger_than_the_data_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"data.subset: 50 images asked for, but there are 40 training images"):
        load_dataset(DataConfig(source="npz", path=_npz(tmp_path), subset=50), seed=0)
    with pytest.raises(DataError, match=r"data.test_subset: 13 images asked for, but there are 12 test images"):
        load_dataset(DataConfig(source="npz", path=_npz(tmp_path), test_subset=13), seed=0)
