"""Raw image sources: each returns arrays in NHWC layout, before any split or scaling.

Every loader returns a :class:`RawData` with ``x_train, y_train`` and, when the
source ships one, ``x_test, y_test``; ``max_value`` is the largest possible pixel
value (used by ``normalization: scale``). Nothing here is ever unpickled:
``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from ..lazy import lazy_import

keras = lazy_import("keras")
sklearn_datasets = lazy_import("sklearn.datasets")

__all__ = ["RawData", "load_source", "SOURCES"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class RawData:
    """Images (N, H, W, C) and integer labels (N,), as loaded."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    max_value: float
    class_names: list[str] | None = None


def _nhwc(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 3 else x


def load_digits_source(_path: str | None = None, **_: object) -> RawData:
    """scikit-learn's 1,797 embedded 8x8 digit images, pixel values 0..16."""
    bunch = sklearn_datasets.load_digits()
    x = bunch.images.astype("float32")[..., None]
    return RawData(x, bunch.target.astype("int64"), None, None, max_value=16.0,
                   class_names=[str(c) for c in bunch.target_names])


def load_npz(path: str | None, **_: object) -> RawData:
    """A ``.npz`` file in the keras layout: x_train, y_train and optionally x_test, y_test."""
    assert path is not None
    if not os.path.exists(path):
        raise DataError(f"data.path: file not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(b"PK"):  # an .npz is a zip archive of .npy arrays; anything else is not one
        what = ("a Python pickle, which cnnkeras never loads (unpickling can run arbitrary code)"
                if head[:1] == b"\x80" else f"a file that starts with {head!r}")
        raise DataError(f"data.path: {path} is not an .npz archive (a zip of .npy arrays, as numpy.savez writes) "
                        f"but {what}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            missing = {"x_train", "y_train"} - keys
            if missing:
                raise DataError(
                    f"data.path: {path} lacks {', '.join(sorted(missing))}; an npz source needs the keras "
                    f"layout x_train, y_train[, x_test, y_test] (found: {', '.join(sorted(keys)) or 'nothing'})"
                )
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
    except DataError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise DataError(
                f"data.path: {path} holds pickled Python objects, which cnnkeras never loads "
                "(unpickling can run arbitrary code); save plain numeric arrays instead"
            ) from None
        raise DataError(f"data.path: cannot read {path}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"data.path: {path} is not a readable .npz file: {exc}") from None
    for key, array in arrays.items():
        if array.dtype == object:
            raise DataError(f"data.path: {path}: {key} holds Python objects; cnnkeras never loads pickles")
    x_train = _nhwc(arrays["x_train"])
    x_test = _nhwc(arrays["x_test"]) if "x_test" in arrays else None
    if x_train.ndim != 4:
        raise DataError(f"data.path: {path}: x_train must be (N, H, W) or (N, H, W, C), got {arrays['x_train'].shape}")
    if len(arrays["y_train"]) != len(x_train):
        raise DataError(f"data.path: {path}: x_train has {len(x_train)} images but y_train {len(arrays['y_train'])} labels")
    max_value = 255.0 if x_train.dtype == np.uint8 else float(max(1.0, np.max(x_train)))
    return RawData(x_train, _label_array(arrays["y_train"]), x_test,
                   _label_array(arrays["y_test"]) if "y_test" in arrays else None, max_value=max_value)


def _label_array(y: np.ndarray) -> np.ndarray:
    """Labels (N,) from (N,) or (N, 1); masks (N, H, W) from (N, H, W) or (N, H, W, 1)."""
    if y.ndim == 4 and y.shape[-1] == 1:
        return y[..., 0]
    return y if y.ndim == 3 else y.reshape(-1)


def _digit_sprites(path: str | None, digit_size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Digit images scaled to 0..1 with their labels, drawn at ``digit_size`` (MNIST at path, else scikit-learn's)."""
    if path:
        raw = load_npz(path)
        images, labels = raw.x_train[..., 0].astype("float32") / raw.max_value, raw.y_train.astype("int64")
    else:
        bunch = sklearn_datasets.load_digits()
        images, labels = bunch.images.astype("float32") / 16.0, bunch.target.astype("int64")
    size = digit_size or (images.shape[1] if path else 16)
    if size != images.shape[1]:
        resized = keras.ops.image.resize(images[..., None], (size, size), interpolation="bilinear")
        images = np.clip(keras.ops.convert_to_numpy(resized)[..., 0], 0.0, 1.0)
    return images, labels, size


def load_digit_scenes(path: str | None, *, scenes=None, seed: int = 0, **_: object) -> RawData:
    """Segmentation scenes: 1-4 digits placed at random on a black square, each pixel labelled.

    A pixel is labelled with its digit's class + 1 where that digit's ink is above half its
    range (0 is background), later digits drawing over earlier ones, the image being the
    pixelwise maximum of the digits. Train scenes use the source's training digits and
    test scenes (a fifth of ``scenes.count``) its test digits when it has them; every
    choice comes from ``seed``, so a config gives the same scenes on any run.
    """
    assert scenes is not None
    sprites, labels, side = _digit_sprites(path, scenes.digit_size)
    if side > scenes.size:
        raise DataError(f"data.scenes.size: {scenes.size} is smaller than a digit ({side} pixels); "
                        "set data.scenes.digit_size or a larger size")
    rng = np.random.default_rng(seed)
    n_test = max(1, scenes.count // 5)
    total = scenes.count + n_test
    images = np.zeros((total, scenes.size, scenes.size), "float32")
    masks = np.zeros((total, scenes.size, scenes.size), "uint8")
    for i in range(total):
        for _digit in range(rng.integers(scenes.digits[0], scenes.digits[1] + 1)):
            k = rng.integers(len(sprites))
            top, left = rng.integers(0, scenes.size - side + 1, size=2)
            window = (slice(top, top + side), slice(left, left + side))
            images[i][window] = np.maximum(images[i][window], sprites[k])
            masks[i][window][sprites[k] > 0.5] = labels[k] + 1
    return RawData(images[n_test:, ..., None], masks[n_test:], images[:n_test, ..., None], masks[:n_test],
                   max_value=1.0, class_names=["background"] + [str(d) for d in range(10)])


def _keras_dataset(name: str) -> Callable[..., RawData]:
    def load(_path: str | None = None, **_: object) -> RawData:
        module = getattr(keras.datasets, name)
        try:
            (x_train, y_train), (x_test, y_test) = module.load_data()
        except Exception as exc:  # offline: urllib / tf errors of many kinds
            raise DataError(
                f"data.source: {name} could not be loaded through keras.datasets ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Offline, point an npz source at a local copy in the keras layout: "
                f"data: {{source: npz, path: /path/to/{name}.npz}}"
            ) from None
        return RawData(_nhwc(x_train), y_train.reshape(-1), _nhwc(x_test), y_test.reshape(-1), max_value=255.0)

    load.__doc__ = f"keras.datasets.{name}.load_data() (downloads on first use)."
    return load


def load_image_folder(path: str | None, *, color_mode: str = "grayscale",
                      resize: tuple[int, int] | None = None, **_: object) -> RawData:
    """A folder with one subfolder per class, read with ``keras.utils.load_img``."""
    assert path is not None
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: folder not found: {path}")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return _image_mask_folder(root, color_mode=color_mode, resize=resize)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.path: {path} has no class subfolders (expected one folder of images per class)")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"data.path: class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        for file in files:
            try:
                image = keras.utils.load_img(file, color_mode=color_mode, target_size=resize)
            except Exception as exc:
                raise DataError(f"data.path: cannot read image {file}: {_why_unreadable(exc)}") from None
            images.append(keras.utils.img_to_array(image))
            labels.append(label)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(
            f"data.path: images in {path} have different sizes {sorted(shapes)[:4]}...; set data.resize: [H, W]"
        )
    return RawData(np.stack(images), np.asarray(labels, dtype="int64"), None, None, max_value=255.0,
                   class_names=classes)


def _read(file: Path, **options: object) -> np.ndarray:
    try:
        return keras.utils.img_to_array(keras.utils.load_img(file, **options))
    except Exception as exc:
        raise DataError(f"data.path: cannot read image {file}: {_why_unreadable(exc)}") from None


def _image_mask_folder(root: Path, *, color_mode: str, resize: tuple[int, int] | None) -> RawData:
    """``images/`` and ``masks/`` with matching file names (any extension); masks hold class indices.

    Images are resized bilinearly, masks by nearest neighbour (a class index is never
    blended with its neighbour's). Every image needs its mask, of the same size.
    """
    def by_stem(folder: Path) -> dict[str, Path]:
        return {f.stem: f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS}

    images, masks = by_stem(root / "images"), by_stem(root / "masks")
    if not images:
        raise DataError(f"data.path: {root / 'images'} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DataError(f"data.path: {len(missing)} image(s) in {root / 'images'} have no mask in {root / 'masks'} "
                        f"(a mask has the image's name): {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DataError(f"data.path: mask(s) in {root / 'masks'} without an image: {', '.join(orphans[:5])}")
    xs, ys = [], []
    for stem, file in images.items():
        image = _read(file, color_mode=color_mode)
        mask = _read(masks[stem], color_mode="grayscale")
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"data.path: mask {masks[stem].name} is {mask.shape[1]}x{mask.shape[0]} but image "
                            f"{file.name} is {image.shape[1]}x{image.shape[0]}; a mask has its image's size")
        if resize is not None:
            image = keras.ops.convert_to_numpy(keras.ops.image.resize(image, resize, interpolation="bilinear"))
            mask = keras.ops.convert_to_numpy(keras.ops.image.resize(mask, resize, interpolation="nearest"))
        xs.append(image)
        ys.append(mask[..., 0].astype("int64"))
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise DataError(f"data.path: images in {root / 'images'} have different sizes {sorted(shapes)[:4]}...; "
                        "set data.resize: [H, W]")
    return RawData(np.stack(xs), np.stack(ys), None, None, max_value=255.0)


def _why_unreadable(exc: Exception) -> str:
    """PIL's reason in words, without the Python object reprs it embeds (``<_io.BytesIO object at 0x...>``)."""
    text = str(exc)
    if "cannot identify image file" in text:
        return "not an image file Pillow can read (corrupt, empty, or another format than its name says)"
    return f"{type(exc).__name__}: {re.sub(r'<[^<>]* at 0x[0-9a-fA-F]+>', 'the file', text)}"


SOURCES: dict[str, Callable[..., RawData]] = {
    "digits": load_digits_source,
    "npz": load_npz,
    "mnist": _keras_dataset("mnist"),
    "fashion_mnist": _keras_dataset("fashion_mnist"),
    "cifar10": _keras_dataset("cifar10"),
    "image_folder": load_image_folder,
    "digit_scenes": load_digit_scenes,
}


def load_source(source: str, path: str | None, **options: object) -> RawData:
    """Load the named source (see :data:`SOURCES`)."""
    return SOURCES[source](path, **options)
