"""Image folders: their listing (and its fingerprint), and decoding one file to 8-bit pixels.

Two layouts (``data.source: image_folder``):

- one subfolder per class, each holding its images (classification);
- ``images/`` and ``masks/`` with matching file names, masks holding class indices
  (segmentation).

:func:`index_folder` lists a folder without decoding anything: the files in a fixed
order (classes sorted by name, files sorted by name), their labels, and a fingerprint of
every file's name, size and modification time (the decoded cache's key: edit, add,
remove or rename a file and the key changes). :func:`decode_image` and
:func:`decode_mask` read one file with Pillow into ``uint8`` pixels at the wanted size:
images by Pillow's bilinear filter (antialiased when shrinking), masks by nearest
neighbour (a class index is never blended). :class:`FolderImages` is a folder as an
array-like (see :mod:`cnnkeras.data.arrays`) that decodes the rows it is asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, UnreadableImage
from ..lazy import lazy_import
from .arrays import row_index

PIL_Image = lazy_import("PIL.Image")

__all__ = ["FolderImages", "FolderIndex", "IMAGE_EXTENSIONS", "decode_image", "decode_mask", "index_folder",
           "why_unreadable"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Pillow modes of more than 8 bits per pixel.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass
class FolderIndex:
    """What an image folder holds, listed without decoding.

    ``files`` are the images (paths), ``masks`` their masks (segmentation layout) or None,
    ``labels`` the class of each image (class layout) or None; ``fingerprint`` hashes
    every file's relative name, size and modification time (nanoseconds).
    """

    root: Path
    layout: str  # "classes" or "masks"
    files: list[Path]
    masks: list[Path] | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    fingerprint: str = ""
    bytes_on_disk: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)


def _images_in(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        found = [e for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda e: e.name)


def index_folder(path: str | os.PathLike[str]) -> FolderIndex:
    """List an image folder (either layout) and fingerprint it; DataError for a folder that is not one."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: folder not found: {path}")
    digest = hashlib.sha256()
    total = 0

    def note(entry: os.DirEntry, prefix: str) -> Path:
        nonlocal total
        stat = entry.stat()
        total += stat.st_size
        digest.update(f"{prefix}/{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return Path(entry.path)

    if (root / "images").is_dir() and (root / "masks").is_dir():
        def by_stem(folder: Path) -> dict[str, os.DirEntry]:
            return {os.path.splitext(e.name)[0]: e for e in _images_in(folder)}

        images, masks = by_stem(root / "images"), by_stem(root / "masks")
        if not images:
            raise DataError(f"data.path: {root / 'images'} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        missing = sorted(set(images) - set(masks))
        if missing:
            raise DataError(f"data.path: {len(missing)} image(s) in {root / 'images'} have no mask in "
                            f"{root / 'masks'} (a mask has the image's name): {', '.join(missing[:5])}"
                            f"{'...' if len(missing) > 5 else ''}")
        orphans = sorted(set(masks) - set(images))
        if orphans:
            raise DataError(f"data.path: mask(s) in {root / 'masks'} without an image: {', '.join(orphans[:5])}")
        stems = list(images)
        return FolderIndex(root, "masks", [note(images[s], "images") for s in stems],
                           masks=[note(masks[s], "masks") for s in stems], fingerprint=digest.hexdigest(),
                           bytes_on_disk=total)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.path: {path} has no class subfolders (expected one folder of images per class)")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        entries = _images_in(root / name)
        if not entries:
            raise DataError(f"data.path: class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        digest.update(f"class {name}\n".encode())
        files.extend(note(e, name) for e in entries)
        labels.extend([label] * len(entries))
    return FolderIndex(root, "classes", files, labels=np.asarray(labels, dtype="int64"), class_names=classes,
                       fingerprint=digest.hexdigest(), bytes_on_disk=total)


def why_unreadable(exc: Exception) -> str:
    """PIL's reason in words, without the Python object reprs it embeds (``<_io.BytesIO object at 0x...>``)."""
    text = str(exc)
    if "cannot identify image file" in text:
        return "not an image file Pillow can read (corrupt, empty, or another format than its name says)"
    return f"{type(exc).__name__}: {re.sub(r'<[^<>]* at 0x[0-9a-fA-F]+>', 'the file', text)}"


def _open(file: Path) -> Any:
    try:
        image = PIL_Image.open(file)
        image.load()
        return image
    except Exception as exc:
        raise UnreadableImage(f"data.path: cannot read image {file}: {why_unreadable(exc)}", str(file)) from None


def decode_image(file: Path, *, color_mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as ``uint8`` (H, W, C), C = 1 (grayscale) or 3 (rgb), resized to ``size`` = (H, W) if given."""
    return _pixels(_open(file), file, color_mode=color_mode, size=size)


def _pixels(image: Any, file: Path, *, color_mode: str, size: tuple[int, int] | None) -> np.ndarray:
    if image.mode in _WIDE_MODES:
        raise DataError(f"data.path: {file} has more than 8 bits per pixel (Pillow mode {image.mode}); "
                        "cnnkeras reads 8-bit images: convert it to an 8-bit PNG or JPEG")
    wanted = "L" if color_mode == "grayscale" else "RGB"
    try:
        if image.mode != wanted:
            image = image.convert(wanted)
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), PIL_Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    except Exception as exc:
        raise UnreadableImage(f"data.path: cannot read image {file}: {why_unreadable(exc)}", str(file)) from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def decode_mask(file: Path, *, image: Path, size: tuple[int, int] | None,
                image_size: tuple[int, int] | None = None) -> np.ndarray:
    """One mask as ``uint8`` (H, W) of class indices, of its image's size, resized by nearest neighbour.

    A palette (mode P) mask gives its palette indices; an 8-bit grayscale mask its values.
    ``image_size`` is the image's (width, height) when known (else its header is read).
    """
    mask = _open(file)
    if image_size is None:
        try:
            with PIL_Image.open(image) as header:
                image_size = header.size
        except Exception as exc:
            raise UnreadableImage(f"data.path: cannot read image {image}: {why_unreadable(exc)}",
                                  str(image)) from None
    if mask.size != image_size:
        raise DataError(f"data.path: mask {file.name} is {mask.size[0]}x{mask.size[1]} but image {image.name} is "
                        f"{image_size[0]}x{image_size[1]}; a mask has its image's size")
    if mask.mode in _WIDE_MODES:
        values = np.asarray(mask)
        if values.min() < 0 or values.max() > 255:
            raise DataError(f"data.path: mask {file} holds class {int(values.max())}: cnnkeras reads masks of "
                            "classes 0..255")
        mask = PIL_Image.fromarray(values.astype(np.uint8))
    elif mask.mode not in ("L", "P"):
        mask = mask.convert("L")
    if size is not None and mask.size != (size[1], size[0]):
        mask = mask.resize((size[1], size[0]), PIL_Image.NEAREST)
    return np.asarray(mask, dtype=np.uint8)


def decode_pair(index: FolderIndex, i: int, *, color_mode: str,
                size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Example ``i`` of a folder: its image, and its mask in the masks layout (else None)."""
    file = index.files[i]
    if index.masks is None:
        return decode_image(file, color_mode=color_mode, size=size), None
    image = _open(file)
    pixels = _pixels(image, file, color_mode=color_mode, size=size)
    return pixels, decode_mask(index.masks[i], image=file, size=size, image_size=image.size)


def different_sizes(root: Path, first: Path, shape: tuple[int, ...], file: Path, got: tuple[int, ...]) -> DataError:
    """The error for a folder whose images differ in size and no data.resize."""
    return DataError(f"data.path: images in {root} have different sizes ({first.name} is {shape[1]}x{shape[0]}, "
                     f"{file.name} is {got[1]}x{got[0]}); set data.resize: [H, W]")


class FolderImages:
    """An image folder as an array-like that decodes the rows it is asked for.

    Args:
        index: The folder's listing.
        color_mode: "grayscale" or "rgb".
        size: (H, W) to resize to, or None (every image must then have the first one's size).
        masks: The masks instead of the images (segmentation layout).

    Output shape:
        ``a[rows]`` is ``uint8`` (len(rows), H, W, C), or (len(rows), H, W) for masks.
    """

    def __init__(self, index: FolderIndex, *, color_mode: str, size: tuple[int, int] | None, masks: bool = False):
        self.index, self.color_mode, self.size, self.masks = index, color_mode, size, masks
        first = decode_image(index.files[0], color_mode=color_mode, size=size)
        self.row_shape = first.shape[:2] if masks else first.shape
        self.shape = (len(index), *self.row_shape)
        self.dtype = np.dtype(np.uint8)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def row(self, i: int) -> np.ndarray:
        """Row ``i``, decoded (and checked against the first row's shape)."""
        if self.masks:
            assert self.index.masks is not None
            return decode_mask(self.index.masks[i], image=self.index.files[i], size=self.size)
        pixels = decode_image(self.index.files[i], color_mode=self.color_mode, size=self.size)
        if pixels.shape != self.row_shape:
            raise different_sizes(self.index.root, self.index.files[0], self.row_shape, self.index.files[i],
                                  pixels.shape)
        return pixels

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = row_index(index, len(self))
        if isinstance(rows, int):
            return self.row(rows)
        numbers = range(len(self))[rows] if isinstance(rows, slice) else rows.tolist()
        out = np.empty((len(numbers), *self.row_shape), np.uint8)
        for k, i in enumerate(numbers):
            out[k] = self.row(i)
        return out

    def __repr__(self) -> str:
        return f"FolderImages({str(self.index.root)!r}, {len(self)} {'masks' if self.masks else 'images'})"
