"""Turn a data config into ready arrays: select, subset, split, resize and scale.

:func:`load_dataset` is the one entry point. The result, a :class:`Dataset`,
holds float32 NHWC images for train, validation and test, integer labels, the
input shape and the number of classes. Splits are stratified and seeded by the
experiment seed, so the same config gives the same split on any run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config.schema import DataConfig
from ..errors import DataError
from ..lazy import lazy_import
from .probes import apply_probes
from .sources import load_source

keras = lazy_import("keras")
sklearn_model_selection = lazy_import("sklearn.model_selection")

__all__ = ["Dataset", "load_dataset"]


@dataclass
class Dataset:
    """Arrays ready for ``model.fit``: images (N, H, W, C) float32, labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        """"segmentation" when the labels are masks (N, H, W), else "classification"."""
        return "segmentation" if self.y_train.ndim == 3 else "classification"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    def summary(self) -> dict[str, object]:
        """Sizes and shapes, logged as run parameters."""
        return {
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "n_test": len(self.x_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }


def _stratified_split(x: np.ndarray, y: np.ndarray, size: float | int, seed: int, what: str):
    counts = np.bincount(y) if y.size else np.array([])
    stratify = y if counts.size and counts[counts > 0].min() >= 2 else None
    try:
        return sklearn_model_selection.train_test_split(x, y, test_size=size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"data.{what}: cannot split {len(y)} images this way: {exc}") from None


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int, what: str):
    if n is None or n >= len(y):
        return x, y
    x_keep, _, y_keep, _ = _stratified_split(x, y, len(y) - n, seed, what)
    return x_keep, y_keep


def _select_classes(x, y, classes: list[int] | None, where: str):
    if classes is None:
        return x, y
    present = set(np.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"data.classes: {missing} not among the {where} labels {sorted(present)}")
    keep = np.isin(y, classes)
    mapping = {c: i for i, c in enumerate(classes)}
    return x[keep], np.asarray([mapping[int(v)] for v in y[keep]], dtype="int64")


def _resize(x: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or tuple(x.shape[1:3]) == tuple(size):
        return x
    if len(x) == 0:  # an empty split (validation_split: 0): only its shape changes
        return np.zeros((0, *size, *x.shape[3:]), dtype="float32")
    out = [keras.ops.convert_to_numpy(keras.ops.image.resize(x[i : i + 2048], size, interpolation="bilinear"))
           for i in range(0, len(x), 2048)]
    return np.concatenate(out).astype("float32")


def _resized_and_normalized(config: DataConfig, max_value: float, *splits: np.ndarray) -> tuple[np.ndarray, ...]:
    """Train, validation and test images resized (bilinear) and normalized with the training split's statistics."""
    splits = tuple(_resize(a.astype("float32"), config.resize) for a in splits)
    if config.normalization == "scale":
        return tuple(a / max_value for a in splits)
    if config.normalization == "standardize":
        mean = splits[0].mean(axis=(0, 1, 2), keepdims=True)
        std = splits[0].std(axis=(0, 1, 2), keepdims=True) + 1e-7
        return tuple((a - mean) / std for a in splits)
    return splits


def _labels(y: np.ndarray, x: np.ndarray, what: str) -> np.ndarray:
    """Integer class indices >= 0, one per image, or a DataError naming the split."""
    if len(y) != len(x):
        raise DataError(f"data: the {what} split has {len(x)} images but {len(y)} labels")
    if y.ndim != 1:
        raise DataError(f"data: {what} labels must be one class index per image, got shape {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0):
            raise DataError(f"data: {what} labels must be integers (class indices)")
    if y.size and y.min() < 0:
        raise DataError(f"data: {what} labels must be >= 0, found {int(y.min())}")
    return y.astype("int64")


def _check_images(x: np.ndarray, what: str, like: np.ndarray | None = None) -> None:
    """Finite pixels, and the training images' shape: before anything trains, not in evaluate."""
    if x.ndim != 4:
        raise DataError(f"data: {what} images must be (N, H, W, C), got shape {tuple(x.shape)}")
    if like is not None and x.shape[1:] != like.shape[1:]:
        raise DataError(f"data: {what} images are {tuple(x.shape[1:])}, training images {tuple(like.shape[1:])}; "
                        "set data.resize to one size")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x))) if np.issubdtype(x.dtype, np.floating) else 0
    if bad:
        raise DataError(f"data: the {what} images hold {bad} non-finite pixel values (NaN or inf)")


def load_dataset(config: DataConfig, *, seed: int) -> Dataset:
    """Load, check, select classes, subset, split (stratified, seeded), resize and normalize.

    Every split is checked here, before any model is built: labels (integers >= 0, one per
    image), pixels (finite), shapes, at least two classes, no test class unknown to training.
    """
    raw = load_source(config.source, config.path, color_mode=config.color_mode, resize=config.resize,
                      scenes=config.scenes, seed=seed)
    if (raw.x_test is None) != (raw.y_test is None):
        raise DataError("data: the file has test images without test labels (or labels without images); "
                        "give x_test and y_test together, or neither (test_split then holds out a test set)")
    _check_images(raw.x_train, "training")
    if raw.y_train.ndim == 3:
        return _segmentation_dataset(raw, config, seed)
    y_all = _labels(raw.y_train, raw.x_train, "training")
    if raw.x_test is not None:
        _check_images(raw.x_test, "test", like=raw.x_train)
        y_test_all = _labels(raw.y_test, raw.x_test, "test")
    x_train, y_train = _select_classes(raw.x_train, y_all, config.classes, "training")
    if raw.x_test is not None:
        x_test, y_test = _select_classes(raw.x_test, y_test_all, config.classes, "test")
    else:
        x_train, x_test, y_train, y_test = _stratified_split(x_train, y_train, config.test_split, seed, "test_split")
    if len(x_train) == 0:
        raise DataError("data: no training images left after selecting classes")
    trained = set(np.unique(y_train).tolist())
    if len(trained) < 2:
        raise DataError(f"data: the training images hold {len(trained)} class ({sorted(trained)}): a classifier "
                        "needs at least 2")
    unseen = sorted(set(np.unique(y_test).tolist()) - trained)
    if unseen:
        raise DataError(f"data: test labels {unseen[:10]} never occur in training (classes {sorted(trained)[:10]}"
                        f"{'...' if len(trained) > 10 else ''}); select classes with data.classes")
    for key, size, available in (("subset", config.subset, len(x_train)), ("test_subset", config.test_subset,
                                                                              len(x_test))):
        if size is not None and size > available:
            raise DataError(f"data.{key}: {size} images asked for, but there are {available} "
                            f"{'training' if key == 'subset' else 'test'} images")
    x_train, y_train = _subset(x_train, y_train, config.subset, seed, "subset")
    x_test, y_test = _subset(x_test, y_test, config.test_subset, seed, "test_subset")
    if config.validation_split > 0:
        x_train, x_val, y_train, y_val = _stratified_split(x_train, y_train, config.validation_split, seed,
                                                           "validation_split")
    else:  # train on the whole training split (cnnkeras best)
        x_val, y_val = x_train[:0], y_train[:0]

    x_train, x_val, x_test = _resized_and_normalized(config, raw.max_value, x_train, x_val, x_test)

    num_classes = len(config.classes) if config.classes else int(max(a.max() for a in (y_train, y_val) if len(a))) + 1
    names = raw.class_names
    if config.classes and names:
        names = [names[c] for c in config.classes if c < len(names)]
    return apply_probes(Dataset(
        x_train.astype("float32"), y_train, x_val.astype("float32"), y_val, x_test.astype("float32"), y_test,
        num_classes=num_classes, class_names=names or [str(i) for i in range(num_classes)],
    ), config, seed)  # label noise, per-class subset: the training split only (data/probes.py)


def _masks(y: np.ndarray, x: np.ndarray, what: str) -> np.ndarray:
    """Integer masks >= 0 of the images' height and width, or a DataError naming the split."""
    if len(y) != len(x):
        raise DataError(f"data: the {what} split has {len(x)} images but {len(y)} masks")
    if y.shape[1:] != x.shape[1:3]:
        raise DataError(f"data: {what} masks are {tuple(y.shape[1:])} but the images {tuple(x.shape[1:3])}; "
                        "a mask has its image's height and width")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"data: {what} masks must hold integer class indices")
    if y.size and y.min() < 0:
        raise DataError(f"data: {what} masks must hold class indices >= 0, found {int(y.min())}")
    return y.astype("int64")


def _split(x: np.ndarray, y: np.ndarray, size: float | int, rng: np.random.Generator):
    """A seeded random split (masks cannot be stratified): (x_keep, x_out, y_keep, y_out)."""
    n_out = size if isinstance(size, int) else int(round(len(x) * size))
    order = rng.permutation(len(x))
    keep, out = order[n_out:], order[:n_out]
    return x[keep], x[out], y[keep], y[out]


def _resize_masks(y: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or tuple(y.shape[1:3]) == tuple(size):
        return y
    if len(y) == 0:
        return np.zeros((0, *size), dtype="int64")
    resized = keras.ops.image.resize(y[..., None].astype("float32"), size, interpolation="nearest")
    return np.rint(keras.ops.convert_to_numpy(resized)[..., 0]).astype("int64")


def _segmentation_dataset(raw, config: DataConfig, seed: int) -> Dataset:
    """Images with masks (N, H, W) of class indices: split at random (seeded), masks resized by nearest."""
    if config.classes is not None:
        raise DataError("data.classes selects classes of labels; masks keep every class (remove data.classes)")
    rng = np.random.default_rng(seed)
    x_train, y_train = raw.x_train, _masks(raw.y_train, raw.x_train, "training")
    if raw.x_test is not None:
        _check_images(raw.x_test, "test", like=raw.x_train)
        x_test, y_test = raw.x_test, _masks(raw.y_test, raw.x_test, "test")
    else:
        x_train, x_test, y_train, y_test = _split(x_train, y_train, config.test_split, rng)
    for key, size, available in (("subset", config.subset, len(x_train)),
                                 ("test_subset", config.test_subset, len(x_test))):
        if size is not None and size > available:
            raise DataError(f"data.{key}: {size} images asked for, but there are {available}")
    if config.subset is not None:
        x_train, _, y_train, _ = _split(x_train, y_train, len(x_train) - config.subset, rng)
    if config.test_subset is not None:
        x_test, _, y_test, _ = _split(x_test, y_test, len(x_test) - config.test_subset, rng)
    if config.validation_split > 0:
        x_train, x_val, y_train, y_val = _split(x_train, y_train, config.validation_split, rng)
    else:
        x_val, y_val = x_train[:0], y_train[:0]
    x_train, x_val, x_test = _resized_and_normalized(config, raw.max_value, x_train, x_val, x_test)
    y_train, y_val, y_test = (_resize_masks(m, config.resize) for m in (y_train, y_val, y_test))
    num_classes = int(max(m.max() for m in (y_train, y_val) if m.size)) + 1
    if num_classes < 2:
        raise DataError("data: the training masks hold one class only; segmentation needs at least 2")
    for what, masks in (("validation", y_val), ("test", y_test)):
        if masks.size and masks.max() >= num_classes:
            raise DataError(f"data: {what} masks hold class {int(masks.max())}, outside the head's range 0.."
                            f"{num_classes - 1} (the largest class in the training masks)")
    names = raw.class_names if raw.class_names and len(raw.class_names) >= num_classes else None
    y_train, y_val, y_test = (m.astype("int32") for m in (y_train, y_val, y_test))  # JAX's default integer
    return Dataset(x_train.astype("float32"), y_train, x_val.astype("float32"), y_val, x_test.astype("float32"),
                   y_test, num_classes=num_classes,
                   class_names=(names or [str(i) for i in range(num_classes)])[:num_classes])
