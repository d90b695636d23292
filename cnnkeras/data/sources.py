"""Raw image sources: each returns arrays in NHWC layout, before any split or scaling.

Every loader returns a :class:`RawData` with ``x_train, y_train`` and, when the
source ships one, ``x_test, y_test``; ``max_value`` is the largest possible pixel
value (used by ``normalization: scale``). Nothing here is ever unpickled:
``.npz`` files are read with ``allow_pickle=False`` (or their headers parsed).

Sources that can be larger than memory (``image_folder``, ``npz``) return array-likes
(:mod:`cnnkeras.data.arrays`) whose shape is known but whose pixels are not read yet,
and a ``realize`` step: once the storage is chosen (:mod:`cnnkeras.data.dataset`),
it maps the decoded cache, reads into memory, or leaves them to be read batch by batch.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..lazy import lazy_import
from .arrays import FileArray, chunks
from .cache import folder_entry, npz_entry
from .images import FolderImages, FolderIndex, index_folder

keras = lazy_import("keras")
sklearn_datasets = lazy_import("sklearn.datasets")

__all__ = ["RawData", "load_source", "SOURCES"]


@dataclass
class RawData:
    """Images (N, H, W, C) and integer labels (N,) or masks (N, H, W), as loaded: arrays or array-likes.

    ``realize(raw, storage, cache, root)``, when set, returns the RawData to read from
    for ``storage`` ("memory" or "stream"), with the decoded cache at ``root`` when
    ``cache``; ``cache_entry`` is then the entry's folder.
    """

    x_train: Any
    y_train: Any
    x_test: Any | None
    y_test: Any | None
    max_value: float
    class_names: list[str] | None = None
    realize: Callable[..., RawData] | None = None
    cache_entry: str | None = None


def load_digits_source(_path: str | None = None, **_: object) -> RawData:
    """scikit-learn's 1,797 embedded 8x8 digit images, pixel values 0..16."""
    bunch = sklearn_datasets.load_digits()
    x = bunch.images.astype("float32")[..., None]
    return RawData(x, bunch.target.astype("int64"), None, None, max_value=16.0,
                   class_names=[str(c) for c in bunch.target_names])


class NpzMember:
    """A compressed ``.npz`` member not read yet: its shape and dtype from its header, its data on demand."""

    def __init__(self, path: str, name: str, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.name, self.shape, self.dtype = path, name, tuple(shape), np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def reshaped(self, shape: tuple[int, ...]) -> NpzMember:
        return NpzMember(self.path, self.name, shape, self.dtype)

    def load(self) -> np.ndarray:
        """The member, read into memory (never unpickled)."""
        with np.load(self.path, allow_pickle=False) as archive:
            return archive[self.name].reshape(self.shape)


def _npz_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """A member's (shape, fortran order, dtype, header length) from its .npy header, without its data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(member)
        return tuple(shape), fortran, dtype, member.tell()


def _npz_arrays(path: str) -> dict[str, Any]:
    """The npz's keras-layout members: mapped in place when stored uncompressed (``numpy.savez``),
    :class:`NpzMember` when compressed (``savez_compressed``). Nothing is unpickled."""
    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        names = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
        keys = set(names)
        missing = {"x_train", "y_train"} - keys
        if missing:
            raise DataError(
                f"data.path: {path} lacks {', '.join(sorted(missing))}; an npz source needs the keras "
                f"layout x_train, y_train[, x_test, y_test] (found: {', '.join(sorted(keys)) or 'nothing'})"
            )
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if key not in names:
                continue
            info = names[key]
            shape, fortran, dtype, header = _npz_header(archive, info)
            if dtype.hasobject:
                raise DataError(
                    f"data.path: {path} holds pickled Python objects, which cnnkeras never loads "
                    f"(unpickling can run arbitrary code; {key} is of dtype object); save plain numeric arrays "
                    "instead"
                )
            if info.compress_type == zipfile.ZIP_STORED and not fortran and not info.flag_bits & 0x1:
                raw.seek(info.header_offset)
                local = raw.read(30)
                start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
                    + int.from_bytes(local[28:30], "little")
                out[key] = FileArray(path, start + header, shape, dtype)
            else:
                out[key] = NpzMember(path, key, shape, dtype)
    return out


def load_npz(path: str | None, **_: object) -> RawData:
    """A ``.npz`` file in the keras layout: x_train, y_train and optionally x_test, y_test.

    Images (and masks) are not read here: uncompressed members are read in place where they
    lie in the file, compressed ones are read when the storage is known (into memory, or
    into the decoded cache to be streamed). Labels are read into memory.
    """
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
        arrays = _npz_arrays(path)
        for key in ("y_train", "y_test"):  # labels are small: read them now (masks stay where they are)
            if key in arrays and len(arrays[key].shape) <= 2:
                member = arrays[key]
                arrays[key] = member.load() if isinstance(member, NpzMember) else np.asarray(member[:])
    except DataError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise DataError(
                f"data.path: {path} holds pickled Python objects, which cnnkeras never loads "
                "(unpickling can run arbitrary code); save plain numeric arrays instead"
            ) from None
        raise DataError(f"data.path: cannot read {path}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"data.path: {path} is not a readable .npz file: {exc}") from None
    x_train = _nhwc(arrays["x_train"])
    x_test = _nhwc(arrays["x_test"]) if "x_test" in arrays else None
    if len(x_train.shape) != 4:
        raise DataError(f"data.path: {path}: x_train must be (N, H, W) or (N, H, W, C), got {arrays['x_train'].shape}")
    if len(arrays["y_train"]) != len(x_train):
        raise DataError(f"data.path: {path}: x_train has {len(x_train)} images but y_train {len(arrays['y_train'])} labels")
    y_train = _label_array(arrays["y_train"])
    y_test = _label_array(arrays["y_test"]) if "y_test" in arrays else None
    raw = RawData(x_train, y_train, x_test, y_test, max_value=0.0)
    raw.realize = functools.partial(_realize_npz, path)
    return raw


def _realize_npz(path: str, raw: RawData, storage: str, cache: bool, root: Path) -> RawData:
    """Compressed members into memory (memory), or into the cache to be mapped (stream)."""
    fields = {k: getattr(raw, k) for k in ("x_train", "y_train", "x_test", "y_test")}
    pending = [k for k, v in fields.items() if isinstance(v, NpzMember)]
    entry = None
    if pending and storage == "stream":
        if not cache:
            raise DataError(f"data.storage: stream reads {path} in place, but its {', '.join(pending)} are "
                            "compressed (numpy.savez_compressed): set data.cache: true to decompress them once "
                            "into the cache, or save the file with numpy.savez")
        entry = npz_entry(path, pending, root=root)
        for key in pending:
            fields[key] = entry.arrays[key].reshaped(fields[key].shape)
    else:
        for key in pending:
            fields[key] = fields[key].load()
    x_train = fields["x_train"]
    if np.dtype(x_train.dtype) == np.uint8:
        max_value = 255.0
    else:
        max_value = float(max(1.0, max((float(np.max(c)) for c in chunks(x_train) if c.size), default=0.0)))
    return replace(raw, **fields, max_value=max_value, realize=None,
                   cache_entry=str(entry.path) if entry is not None else None)


def _nhwc(x: Any) -> Any:
    """(N, H, W) images as (N, H, W, 1): the same data (a view, or a mapped array of another shape)."""
    if len(x.shape) != 3:
        return x
    return x[..., None] if isinstance(x, np.ndarray) else x.reshaped((*x.shape, 1))


def _label_array(y: Any) -> Any:
    """Labels (N,) from (N,) or (N, 1); masks (N, H, W) from (N, H, W) or (N, H, W, 1)."""
    if len(y.shape) == 4 and y.shape[-1] == 1:
        return y[..., 0] if isinstance(y, np.ndarray) else y.reshaped(y.shape[:3])
    return y if len(y.shape) == 3 else y.reshape(-1)


def _digit_sprites(path: str | None, digit_size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Digit images scaled to 0..1 with their labels, drawn at ``digit_size`` (MNIST at path, else scikit-learn's)."""
    if path:
        raw = load_npz(path)
        assert raw.realize is not None
        raw = raw.realize(raw, "memory", False, Path())
        images = np.asarray(raw.x_train[:])[..., 0].astype("float32") / raw.max_value
        labels = raw.y_train.astype("int64")
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
    """A folder with one subfolder per class, or ``images/`` and ``masks/`` (segmentation).

    Listed here, not decoded (only the first image, for the shape): the storage decides
    between the decoded cache, decoding into memory, and decoding batch by batch.
    Images are read as 8-bit pixels and resized by Pillow's bilinear filter, masks by
    nearest neighbour (see :mod:`cnnkeras.data.images`).
    """
    assert path is not None
    index = index_folder(path)
    images = FolderImages(index, color_mode=color_mode, size=resize)
    if index.layout == "masks":
        labels: Any = FolderImages(index, color_mode=color_mode, size=resize, masks=True)
    else:
        labels = index.labels
    raw = RawData(images, labels, None, None, max_value=255.0, class_names=index.class_names)
    raw.realize = functools.partial(_realize_folder, index, color_mode, resize)
    return raw


def _realize_folder(index: FolderIndex, color_mode: str, resize: tuple[int, int] | None, raw: RawData,
                    storage: str, cache: bool, root: Path) -> RawData:
    """The folder decoded into the cache (mapped), into memory (no cache), or left to decode per batch."""
    if cache:
        entry = folder_entry(index, color_mode=color_mode, size=resize, root=root)
        mapped = entry.arrays.get("masks")
        return replace(raw, x_train=entry.arrays["images"], y_train=mapped if mapped is not None else raw.y_train,
                       realize=None, cache_entry=str(entry.path))
    if storage == "memory":
        masks = raw.y_train if isinstance(raw.y_train, FolderImages) else None
        return replace(raw, x_train=raw.x_train[:], y_train=masks[:] if masks is not None else raw.y_train,
                       realize=None)
    return replace(raw, realize=None)


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
