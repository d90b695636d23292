"""The decoded cache: image folders (and compressed npz members) decoded once, to uint8 ``.npy`` files.

Decoding is the costly part of reading a folder of PNG or JPEG files, and every trial
of a sweep reads the same folder. The first one decodes it into an *entry* of the
cache: ``images.npy`` (``uint8`` (N, H, W, C)) and for segmentation ``masks.npy``
(``uint8`` (N, H, W)), with ``meta.json``. Every later run, trial or worker process
reads those files in place (:class:`~cnnkeras.data.arrays.FileArray`, positional reads): the
operating system's page cache holds them once for all of them, and no process's resident
memory grows with them.

Where: ``data.cache_dir``, else ``$CNNKERAS_CACHE_DIR``, else
``$XDG_CACHE_HOME/cnnkeras/data`` (``~/.cache/cnnkeras/data``).

The key (the entry's name ends with it) hashes what the pixels depend on: every file's
relative name, size and modification time (see :func:`cnnkeras.data.images.index_folder`),
the layout, ``color_mode`` and ``resize``. Editing, adding, removing or renaming a file
gives a new key, so a stale entry is never read (``cnnkeras cache list`` shows it stale,
``cnnkeras cache clear --stale`` removes it).

Safety: an entry is written under a temporary name, each file fsynced, then renamed into
place in one atomic step; a Ctrl-C, an error or a kill leaves no entry (the temporary
folder is removed, or after a kill by the next process that builds that key). An
exclusive lock per key (``flock``) makes processes that need the same entry at once
(``--jobs 2``, workers on one database) wait for the one that decodes it: a folder is
decoded once. Every decode is appended to ``decode.log`` in the cache folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import interrupts
from ..errors import DataError
from .arrays import FileArray
from .images import FolderIndex, decode_pair, different_sizes, index_folder

try:  # POSIX; elsewhere entries are still written atomically, but concurrent builders are not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["CacheEntry", "ENV_VAR", "FORMAT", "cache_root", "clear_cache", "folder_entry", "list_cache",
           "npz_entry"]

#: The environment variable that sets the cache folder (the config key data.cache_dir wins over it).
ENV_VAR = "CNNKERAS_CACHE_DIR"
#: Version of the entry layout; part of every key.
FORMAT = 1
#: Images decoded per task of the decoding threads.
BLOCK = 64
#: Seconds between progress lines while decoding.
PROGRESS_EVERY_S = 15.0
LOG = "decode.log"


def cache_root(configured: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``configured`` (data.cache_dir), else $CNNKERAS_CACHE_DIR, else the user cache."""
    if configured:
        return Path(os.path.expanduser(os.fspath(configured)))
    if os.environ.get(ENV_VAR):
        return Path(os.path.expanduser(os.environ[ENV_VAR]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnkeras" / "data"


@dataclass
class CacheEntry:
    """One decoded dataset in the cache: its folder, its ``meta.json``, and its arrays mapped."""

    path: Path
    meta: dict[str, Any]
    status: str = "current"  # for listings: current, stale (its files changed), missing (its source is gone), building
    size_bytes: int = 0
    built: bool = False  # decoded by this call (not found in the cache)
    arrays: dict[str, FileArray] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    def load(self) -> CacheEntry:
        """Open the entry's arrays (read-only)."""
        self.arrays = {name: FileArray.npy(self.path / f"{name}.npy") for name in self.meta.get("arrays", {})}
        return self


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:20] or "data"


def _key(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"format": FORMAT, **material}, sort_keys=True).encode()).hexdigest()[:12]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover (platforms without directory fds)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def _locked(root: Path, name: str, what: str) -> Iterator[None]:
    """Hold the key's lock; say once whom we wait for. A Ctrl-C while waiting stops the wait."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = root / f"{name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                    _say(f"cnnkeras: waiting for {holder}, which is decoding {what} into the cache")
                    waited = True
                interrupts.raise_if_requested()
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _is_locked(root: Path, name: str) -> bool:
    """Whether some process holds the key's lock now (it is building that entry)."""
    if fcntl is None:  # pragma: no cover
        return False
    path = root / f"{name}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _complete(path: Path) -> CacheEntry | None:
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        return CacheEntry(path, json.loads(meta_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


class _NpyWriter:
    """A ``.npy`` file written front to back (no memory map: written pages stay out of the process's memory)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any):
        self.handle = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.handle, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})

    def write(self, rows: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(rows).tobytes())

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()


def _build(root: Path, name: str, what: str, fill: Callable[[Path], dict[str, Any]],
           base_meta: dict[str, Any]) -> CacheEntry:
    """The entry ``name``, built by ``fill(temporary folder)`` unless it exists; see the module."""
    final = root / name
    found = _complete(final)
    if found is not None:
        return found.load()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, name, what):
        found = _complete(final)
        if found is not None:  # another process built it while we waited
            return found.load()
        for leftover in root.glob(f".{name}.tmp-*"):  # a builder killed before it could clean up
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():  # a folder without meta.json is not an entry we wrote
            shutil.rmtree(final, ignore_errors=True)
        tmp = root / f".{name}.tmp-{os.getpid()}"
        started = time.perf_counter()
        try:
            tmp.mkdir()
            meta = {**base_meta, **fill(tmp)}
            meta.update(name=name, created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                        decode_s=round(time.perf_counter() - started, 2), host=socket.gethostname(),
                        pid=os.getpid())
            meta_file = tmp / "meta.json"
            with open(meta_file, "w", encoding="utf-8") as handle:
                json.dump(meta, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with open(root / LOG, "a", encoding="utf-8") as log:
            log.write(f"{meta['created']}\t{meta['host']}\t{os.getpid()}\t{name}\t{meta.get('source', '')}\t"
                      f"{meta.get('count', '')}\t{meta['decode_s']}\n")
    return CacheEntry(final, meta, built=True).load()


def _decoded_blocks(count: int, decode: Callable[[int, int], Any], workers: int, what: str) -> Iterator[Any]:
    """``decode(start, stop)`` for consecutive blocks of BLOCK rows, in order, on ``workers`` threads.

    Waits in short steps, so a deferred Ctrl-C (see :mod:`cnnkeras.interrupts`) stops it too.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="cnnkeras-decode")
    pending: deque = deque()
    starts = iter(range(0, count, BLOCK))
    started = last = time.perf_counter()
    done = 0
    try:
        while True:
            while len(pending) < 2 * max(1, workers):
                start = next(starts, None)
                if start is None:
                    break
                pending.append(pool.submit(decode, start, min(start + BLOCK, count)))
            if not pending:
                return
            future = pending.popleft()
            while True:
                try:
                    block = future.result(timeout=0.25)
                    break
                except TimeoutError:
                    interrupts.raise_if_requested()
            interrupts.raise_if_requested()
            done += len(block[0])
            yield block
            now = time.perf_counter()
            if now - last > PROGRESS_EVERY_S:
                last = now
                _say(f"cnnkeras: decoded {done:,} / {count:,} {what} ({now - started:.0f} s)")
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def folder_entry(index: FolderIndex, *, color_mode: str, size: tuple[int, int] | None, root: Path,
                 workers: int | None = None) -> CacheEntry:
    """The cache entry of an indexed image folder, decoded now unless another run already did."""
    material = {"kind": "image_folder", "layout": index.layout, "fingerprint": index.fingerprint,
                "color_mode": color_mode, "resize": list(size) if size else None}
    name = f"{_slug(index.root.name)}-{_key(material)}"
    what = f"{len(index):,} images of {index.root}"
    workers = workers or os.cpu_count() or 1

    def fill(tmp: Path) -> dict[str, Any]:
        first, first_mask = decode_pair(index, 0, color_mode=color_mode, size=size)
        shape = first.shape
        n = len(index)
        _say(f"cnnkeras: decoding {what} into the cache {tmp.parent} (once: every run of this folder reuses it)")
        images = _NpyWriter(tmp / "images.npy", (n, *shape), np.uint8)
        masks = _NpyWriter(tmp / "masks.npy", (n, *shape[:2]), np.uint8) if first_mask is not None else None

        def decode(start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
            xs = np.empty((stop - start, *shape), np.uint8)
            ys = np.empty((stop - start, *shape[:2]), np.uint8) if masks is not None else None
            for k, i in enumerate(range(start, stop)):
                image, mask = decode_pair(index, i, color_mode=color_mode, size=size)
                if image.shape != shape:
                    raise different_sizes(index.root, index.files[0], shape, index.files[i], image.shape)
                xs[k] = image
                if ys is not None:
                    ys[k] = mask
            return xs, ys

        try:
            for xs, ys in _decoded_blocks(n, decode, workers, "images"):
                images.write(xs)
                if masks is not None:
                    masks.write(ys)
        finally:
            images.close()
            if masks is not None:
                masks.close()
        arrays = {"images": {"shape": [n, *shape], "dtype": "uint8"}}
        if masks is not None:
            arrays["masks"] = {"shape": [n, *shape[:2]], "dtype": "uint8"}
        return {"arrays": arrays, "count": n}

    meta = {"format": FORMAT, "kind": "image_folder", "source": str(index.root.resolve()), "layout": index.layout,
            "color_mode": color_mode, "resize": list(size) if size else None, "class_names": index.class_names,
            "source_bytes": index.bytes_on_disk}
    entry = _build(root, name, what, fill, meta)
    if entry.built:
        total = sum(a.nbytes for a in entry.arrays.values())
        _say(f"cnnkeras: decoded {len(index):,} images in {entry.meta['decode_s']:.1f} s: "
             f"{total / 2**20:,.0f} MB at {entry.path}")
    return entry


def npz_entry(path: str, members: list[str], *, root: Path) -> CacheEntry:
    """The cache entry of an ``.npz`` file's compressed members, each copied out as an uncompressed ``.npy``."""
    stat = os.stat(path)
    material = {"kind": "npz", "file": os.path.basename(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "members": sorted(members)}
    name = f"{_slug(Path(path).stem)}-{_key(material)}"

    def fill(tmp: Path) -> dict[str, Any]:
        _say(f"cnnkeras: decompressing {', '.join(members)} of {path} into the cache {tmp.parent} (once)")
        arrays = {}
        with zipfile.ZipFile(path) as archive:
            for member in members:
                with archive.open(f"{member}.npy") as source, open(tmp / f"{member}.npy", "wb") as target:
                    while True:
                        interrupts.raise_if_requested()
                        chunk = source.read(16 * 2**20)
                        if not chunk:
                            break
                        target.write(chunk)
                    target.flush()
                    os.fsync(target.fileno())
                mapped = FileArray.npy(tmp / f"{member}.npy")
                arrays[member] = {"shape": list(mapped.shape), "dtype": mapped.dtype.str}
        return {"arrays": arrays, "count": int(next(iter(arrays.values()))["shape"][0]) if arrays else 0}

    meta = {"format": FORMAT, "kind": "npz", "source": str(Path(path).resolve())}
    return _build(root, name, f"{path}", fill, meta)


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for file in files:
            try:
                total += os.stat(os.path.join(folder, file)).st_size
            except OSError:
                pass
    return total


def _status(entry: CacheEntry) -> str:
    """current, stale (the source's files changed: a run would build a new entry) or missing."""
    meta = entry.meta
    source = meta.get("source")
    if not source or not os.path.exists(source):
        return "missing"
    try:
        if meta.get("kind") == "image_folder":
            index = index_folder(source)
            material = {"kind": "image_folder", "layout": index.layout, "fingerprint": index.fingerprint,
                        "color_mode": meta.get("color_mode"),
                        "resize": meta.get("resize")}
        else:
            stat = os.stat(source)
            material = {"kind": "npz", "file": os.path.basename(source), "size": stat.st_size,
                        "mtime_ns": stat.st_mtime_ns, "members": sorted(meta.get("arrays", {}))}
    except (DataError, OSError):
        return "stale"
    return "current" if entry.name.endswith("-" + _key(material)) else "stale"


def list_cache(cache_dir: str | os.PathLike[str] | None = None, *, check: bool = True) -> list[CacheEntry]:
    """The cache's entries (newest first), with their size and, when ``check``, whether their source changed.

    Leftovers of a killed decode show as status ``partial``; an entry being decoded now as ``building``.
    """
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    entries = []
    for path in root.iterdir():
        if not path.is_dir():
            continue
        if path.name.startswith("."):
            key = path.name[1:].split(".tmp-")[0]
            status = "building" if _is_locked(root, key) else "partial"
            entries.append(CacheEntry(path, {"name": key}, status=status, size_bytes=_size(path)))
            continue
        entry = _complete(path)
        if entry is None:
            entries.append(CacheEntry(path, {"name": path.name}, status="partial", size_bytes=_size(path)))
            continue
        entry.size_bytes = _size(path)
        entry.status = _status(entry) if check else "unchecked"
        entries.append(entry)
    return sorted(entries, key=lambda e: str(e.meta.get("created", "")), reverse=True)


def clear_cache(cache_dir: str | os.PathLike[str] | None = None, *, names: list[str] | None = None,
                stale: bool = False) -> list[CacheEntry]:
    """Remove entries: those named, else the stale, missing and partial ones (``stale``), else all.

    An entry being decoded right now is left alone. Returns the entries removed.
    """
    root = cache_root(cache_dir)
    removed = []
    for entry in list_cache(cache_dir, check=stale):
        key = entry.meta.get("name", entry.name)
        if names and entry.name not in names and key not in names:
            continue
        if stale and not names and entry.status not in ("stale", "missing", "partial"):
            continue
        if entry.status == "building":
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        lock = root / f"{key}.lock"
        if not (root / key).exists() and lock.exists() and not _is_locked(root, key):
            lock.unlink(missing_ok=True)
        removed.append(entry)
    if names:
        unknown = sorted(set(names) - {e.name for e in removed} - {e.meta.get("name") for e in removed})
        if unknown:
            raise DataError(f"cache: no entry named {', '.join(unknown)} in {root} (cnnkeras cache list shows them)")
    return removed
