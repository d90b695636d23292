"""Turn a data config into ready splits: select, subset, split, resize and scale, in memory or streamed.

:func:`load_dataset` is the one entry point. The result, a :class:`Dataset`, holds
float32 NHWC images for train, validation and test, integer labels (or masks), the
input shape and the number of classes. Splits are stratified and seeded by the
experiment seed, so the same config gives the same split on any run.

Every step works on *positions* (row numbers of the source), never on the pixels: the
classes kept, the test, subset and validation splits are index arrays. Only at the end
are the pixels read, by one transform (float32, resize, normalize):

- ``storage: memory``: each split read in pieces into one float32 array;
- ``storage: stream``: each split a :class:`~cnnkeras.data.arrays.SplitView`, which
  applies the same transform to the rows a batch asks for.

So a streamed split is the in-memory split read a batch at a time: ``view[rows]`` equals
``array[rows]`` exactly. ``storage: auto`` (the default) keeps in memory what the
config's ``memory_limit_gb`` allows (estimated from the shapes, before anything is read),
and streams the rest; only ``image_folder`` and ``npz`` sources can stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.schema import DataConfig
from ..errors import DataError
from ..lazy import lazy_import
from .arrays import SplitView, chunks
from .cache import cache_root
from .probes import apply_probes
from .sources import load_source

keras = lazy_import("keras")
sklearn_model_selection = lazy_import("sklearn.model_selection")

__all__ = ["Dataset", "ImageTransform", "MaskTransform", "channel_stats", "choose_storage", "load_dataset",
           "memory_estimate"]


@dataclass
class Dataset:
    """Splits ready for ``model.fit``: images (N, H, W, C) float32, labels (N,) or masks (N, H, W).

    In memory they are NumPy arrays; streamed (``storage == "stream"``) they are
    array-likes (:mod:`cnnkeras.data.arrays`): ``len``, ``shape``, ``ndim``, ``dtype`` and
    ``x[rows]`` (an int, a slice or an index array) giving NumPy arrays. Classification
    labels are always in memory.
    """

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    storage: str = "memory"
    cache_entry: str | None = None

    @property
    def task(self) -> str:
        """"segmentation" when the labels are masks (N, H, W), else "classification"."""
        return "segmentation" if self.y_train.ndim == 3 else "classification"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def streamed(self) -> bool:
        return self.storage == "stream"

    def summary(self) -> dict[str, object]:
        """Sizes and shapes, logged as run parameters (``storage_used``: memory or stream)."""
        out: dict[str, object] = {
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "n_test": len(self.x_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "storage_used": self.storage,
        }
        if self.cache_entry:
            out["cache_entry"] = self.cache_entry
        return out


# ------------------------------------------------------------------ storage


def _row_shape(raw_shape: tuple[int, ...], resize: tuple[int, int] | None) -> tuple[int, ...]:
    return (*resize, *raw_shape[3:]) if resize else tuple(raw_shape[1:])


def memory_estimate(raw: Any, config: DataConfig) -> int:
    """Bytes the splits would take in memory: float32 images (after resize), int32 masks."""
    total = 0
    for x, y in ((raw.x_train, raw.y_train), (raw.x_test, raw.y_test)):
        if x is None:
            continue
        total += len(x) * int(np.prod(_row_shape(tuple(x.shape), config.resize))) * 4
        if y is not None and len(y.shape) == 3:
            total += len(y) * int(np.prod(config.resize or y.shape[1:])) * 4
    return total


def choose_storage(config: DataConfig, raw: Any) -> str:
    """"memory" or "stream": ``data.storage``, or for ``auto`` whether :func:`memory_estimate` is within
    ``data.memory_limit_gb`` (a rule of the config alone, so a config stores the same way on any machine)."""
    if raw.realize is None:  # sources that load whole (digits, keras datasets, scenes)
        return "memory"
    if config.storage != "auto":
        return config.storage
    return "memory" if memory_estimate(raw, config) <= config.memory_limit_gb * 2**30 else "stream"


# ----------------------------------------------------------------- transforms


def _resize(x: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or tuple(x.shape[1:3]) == tuple(size):
        return x
    if len(x) == 0:  # an empty split (validation_split: 0): only its shape changes
        return np.zeros((0, *size, *x.shape[3:]), dtype="float32")
    out = [keras.ops.convert_to_numpy(keras.ops.image.resize(x[i : i + 2048], size, interpolation="bilinear"))
           for i in range(0, len(x), 2048)]
    return np.concatenate(out).astype("float32")


def _resize_masks(y: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or tuple(y.shape[1:3]) == tuple(size):
        return y
    if len(y) == 0:
        return np.zeros((0, *size), dtype="int64")
    resized = keras.ops.image.resize(y[..., None].astype("float32"), size, interpolation="nearest")
    return np.rint(keras.ops.convert_to_numpy(resized)[..., 0]).astype("int64")


class ImageTransform:
    """Source rows -> model input: float32, resized (bilinear), normalized. Acts row by row.

    ``mode`` is data.normalization: ``scale`` divides by ``max_value``; ``standardize``
    subtracts ``mean`` and divides by ``std`` (per channel, (1, 1, 1, C)); ``none`` keeps values.
    """

    def __init__(self, mode: str, *, resize: tuple[int, int] | None, max_value: float = 1.0,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.mode, self.resize, self.max_value, self.mean, self.std = mode, resize, max_value, mean, std

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = _resize(batch.astype("float32"), self.resize)
        if self.mode == "scale":
            return x / self.max_value
        if self.mode == "standardize":
            return (x - self.mean) / self.std
        return x


class MaskTransform:
    """Source mask rows -> int32 class indices, resized by nearest neighbour. Acts row by row."""

    def __init__(self, resize: tuple[int, int] | None):
        self.resize = resize

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return _resize_masks(batch.astype("int64"), self.resize).astype("int32")


def channel_stats(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (+1e-7) of float images, as float32 (1, 1, 1, C), summed in float64 by pieces.

    One definition for both storages: the in-memory split and its streamed view give the same numbers.
    """
    total: np.ndarray | None = None
    sq: np.ndarray | None = None
    count = 0
    for part in chunks(x):
        values = part.astype("float64")
        part_sum, part_sq = values.sum(axis=(0, 1, 2)), np.square(values).sum(axis=(0, 1, 2))
        total = part_sum if total is None else total + part_sum
        sq = part_sq if sq is None else sq + part_sq
        count += int(np.prod(part.shape[:3]))
    if total is None or sq is None or count == 0:
        raise DataError("data: no training images to compute standardize statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - np.square(mean), 0.0))
    shape = (1, 1, 1, len(mean))
    return mean.astype("float32").reshape(shape), (std.astype("float32") + np.float32(1e-7)).reshape(shape)


def _split_form(base: Any, positions: np.ndarray, transform: Callable[[np.ndarray], np.ndarray],
                row_shape: tuple[int, ...], dtype: str, storage: str) -> Any:
    """The split: a float32/int32 array read now (memory), or a view read batch by batch (stream)."""
    view = SplitView(base, positions, transform, row_shape, dtype)
    if storage == "stream":
        return view
    out = np.empty(view.shape, dtype)
    for start in range(0, len(view), 2048):
        out[start:start + 2048] = view[start:start + 2048]
    return out


# ---------------------------------------------------------------------- checks


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


def _labels(y: np.ndarray, x: Any, what: str) -> np.ndarray:
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


def _check_images(x: Any, what: str, like: Any | None = None) -> None:
    """Finite pixels, and the training images' shape: before anything trains, not in evaluate.

    Read in pieces, so a source larger than memory is checked too (8-bit sources need no scan).
    """
    if len(x.shape) != 4:
        raise DataError(f"data: {what} images must be (N, H, W, C), got shape {tuple(x.shape)}")
    if like is not None and tuple(x.shape[1:]) != tuple(like.shape[1:]):
        raise DataError(f"data: {what} images are {tuple(x.shape[1:])}, training images {tuple(like.shape[1:])}; "
                        "set data.resize to one size")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        return
    bad = sum(int(np.size(part) - np.count_nonzero(np.isfinite(part))) for part in chunks(x))
    if bad:
        raise DataError(f"data: the {what} images hold {bad} non-finite pixel values (NaN or inf)")


def _realized(config: DataConfig, raw: Any, storage: str) -> Any:
    if raw.realize is None:
        return raw
    return raw.realize(raw, storage, config.cache, cache_root(config.cache_dir))


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
    storage = choose_storage(config, raw)
    raw = _realized(config, raw, storage)
    _check_images(raw.x_train, "training")
    if len(raw.y_train.shape) == 3:
        return _segmentation_dataset(raw, config, seed, storage)
    y_all = _labels(np.asarray(raw.y_train), raw.x_train, "training")
    if raw.x_test is not None:
        _check_images(raw.x_test, "test", like=raw.x_train)
        y_test_all = _labels(np.asarray(raw.y_test), raw.x_test, "test")
    train_pos, y_train = _select_classes(np.arange(len(y_all)), y_all, config.classes, "training")
    if raw.x_test is not None:
        test_base = raw.x_test
        test_pos, y_test = _select_classes(np.arange(len(y_test_all)), y_test_all, config.classes, "test")
    else:
        test_base = raw.x_train
        train_pos, test_pos, y_train, y_test = _stratified_split(train_pos, y_train, config.test_split, seed,
                                                                 "test_split")
    if len(train_pos) == 0:
        raise DataError("data: no training images left after selecting classes")
    trained = set(np.unique(y_train).tolist())
    if len(trained) < 2:
        raise DataError(f"data: the training images hold {len(trained)} class ({sorted(trained)}): a classifier "
                        "needs at least 2")
    unseen = sorted(set(np.unique(y_test).tolist()) - trained)
    if unseen:
        raise DataError(f"data: test labels {unseen[:10]} never occur in training (classes {sorted(trained)[:10]}"
                        f"{'...' if len(trained) > 10 else ''}); select classes with data.classes")
    for key, size, available in (("subset", config.subset, len(train_pos)), ("test_subset", config.test_subset,
                                                                              len(test_pos))):
        if size is not None and size > available:
            raise DataError(f"data.{key}: {size} images asked for, but there are {available} "
                            f"{'training' if key == 'subset' else 'test'} images")
    train_pos, y_train = _subset(train_pos, y_train, config.subset, seed, "subset")
    test_pos, y_test = _subset(test_pos, y_test, config.test_subset, seed, "test_subset")
    if config.validation_split > 0:
        train_pos, val_pos, y_train, y_val = _stratified_split(train_pos, y_train, config.validation_split, seed,
                                                               "validation_split")
    else:  # train on the whole training split (cnnkeras best)
        val_pos, y_val = train_pos[:0], y_train[:0]

    x_train, x_val, x_test = _image_splits(config, raw, storage, (raw.x_train, train_pos),
                                           (raw.x_train, val_pos), (test_base, test_pos))
    num_classes = len(config.classes) if config.classes else int(max(a.max() for a in (y_train, y_val) if len(a))) + 1
    names = raw.class_names
    if config.classes and names:
        names = [names[c] for c in config.classes if c < len(names)]
    return apply_probes(Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=num_classes,
                                class_names=names or [str(i) for i in range(num_classes)], storage=storage,
                                cache_entry=raw.cache_entry),
                        config, seed)  # label noise, per-class subset: the training split only (data/probes.py)


def _image_splits(config: DataConfig, raw: Any, storage: str, *splits: tuple[Any, np.ndarray]) -> list[Any]:
    """Train, validation and test images (base, positions) resized (bilinear) and normalized with the
    training split's statistics: arrays (memory) or views (stream)."""
    row_shape = _row_shape(tuple(raw.x_train.shape), config.resize)
    transform = ImageTransform(config.normalization, resize=config.resize, max_value=raw.max_value)
    if config.normalization == "standardize":
        train_base, train_pos = splits[0]
        transform.mean, transform.std = channel_stats(
            SplitView(train_base, train_pos, ImageTransform("none", resize=config.resize), row_shape, "float32"))
    return [_split_form(base, pos, transform, row_shape, "float32", storage) for base, pos in splits]


def _masks(y: Any, x: Any, what: str) -> Any:
    """Integer masks >= 0 of the images' height and width (read in pieces), or a DataError naming the split."""
    if len(y) != len(x):
        raise DataError(f"data: the {what} split has {len(x)} images but {len(y)} masks")
    if tuple(y.shape[1:]) != tuple(x.shape[1:3]):
        raise DataError(f"data: {what} masks are {tuple(y.shape[1:])} but the images {tuple(x.shape[1:3])}; "
                        "a mask has its image's height and width")
    integer = np.issubdtype(np.dtype(y.dtype), np.integer)
    lowest = None
    for part in chunks(y):
        if not integer and not np.all(np.mod(part, 1) == 0):
            raise DataError(f"data: {what} masks must hold integer class indices")
        if part.size:
            lowest = part.min() if lowest is None else min(lowest, part.min())
    if lowest is not None and lowest < 0:
        raise DataError(f"data: {what} masks must hold class indices >= 0, found {int(lowest)}")
    return y


def _split(positions: np.ndarray, size: float | int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split (masks cannot be stratified): (kept positions, positions taken out)."""
    n_out = size if isinstance(size, int) else int(round(len(positions) * size))
    order = rng.permutation(len(positions))
    return positions[order[n_out:]], positions[order[:n_out]]


def _largest(masks: Any) -> int:
    return max((int(part.max()) for part in chunks(masks) if part.size), default=-1)


def _segmentation_dataset(raw: Any, config: DataConfig, seed: int, storage: str) -> Dataset:
    """Images with masks (N, H, W) of class indices: split at random (seeded), masks resized by nearest."""
    if config.classes is not None:
        raise DataError("data.classes selects classes of labels; masks keep every class (remove data.classes)")
    rng = np.random.default_rng(seed)
    _masks(raw.y_train, raw.x_train, "training")
    train_pos = np.arange(len(raw.x_train))
    if raw.x_test is not None:
        _check_images(raw.x_test, "test", like=raw.x_train)
        _masks(raw.y_test, raw.x_test, "test")
        test_x, test_y, test_pos = raw.x_test, raw.y_test, np.arange(len(raw.x_test))
    else:
        test_x, test_y = raw.x_train, raw.y_train
        train_pos, test_pos = _split(train_pos, config.test_split, rng)
    for key, size, available in (("subset", config.subset, len(train_pos)),
                                 ("test_subset", config.test_subset, len(test_pos))):
        if size is not None and size > available:
            raise DataError(f"data.{key}: {size} images asked for, but there are {available}")
    if config.subset is not None:
        train_pos, _ = _split(train_pos, len(train_pos) - config.subset, rng)
    if config.test_subset is not None:
        test_pos, _ = _split(test_pos, len(test_pos) - config.test_subset, rng)
    if config.validation_split > 0:
        train_pos, val_pos = _split(train_pos, config.validation_split, rng)
    else:
        val_pos = train_pos[:0]
    x_train, x_val, x_test = _image_splits(config, raw, storage, (raw.x_train, train_pos), (raw.x_train, val_pos),
                                           (test_x, test_pos))
    mask_shape = tuple(config.resize) if config.resize else tuple(raw.y_train.shape[1:])
    to_masks = MaskTransform(config.resize)
    y_train, y_val, y_test = (_split_form(base, pos, to_masks, mask_shape, "int32", storage)
                              for base, pos in ((raw.y_train, train_pos), (raw.y_train, val_pos), (test_y, test_pos)))
    num_classes = max(_largest(y_train), _largest(y_val)) + 1
    if num_classes < 2:
        raise DataError("data: the training masks hold one class only; segmentation needs at least 2")
    for what, masks in (("validation", y_val), ("test", y_test)):
        top = _largest(masks)
        if top >= num_classes:
            raise DataError(f"data: {what} masks hold class {top}, outside the head's range 0.."
                            f"{num_classes - 1} (the largest class in the training masks)")
    names = raw.class_names if raw.class_names and len(raw.class_names) >= num_classes else None
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=num_classes,
                   class_names=(names or [str(i) for i in range(num_classes)])[:num_classes], storage=storage,
                   cache_entry=raw.cache_entry)

