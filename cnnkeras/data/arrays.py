"""Array-likes for data larger than memory: rows read on demand, as NumPy arrays.

A split of a streamed dataset is not an array in memory but an object that behaves
like one where the code reads it: ``len(a)``, ``a.shape``, ``a.ndim``, ``a.dtype`` and
``a[index]`` for an int, a slice or an integer index array (in any order), which
returns a NumPy array. Three kinds:

- :class:`FileArray`: an array stored in a file (a ``.npy`` of the decoded cache, or an
  uncompressed member of an ``.npz``), whose rows are read with positional reads: a pass
  over a 10 GB file costs the page cache (shared by every process that reads it), not
  the process's resident memory.
- :class:`SplitView`: rows ``positions`` of a base array-like, each read turned into
  model input by a transform (float32, resized, normalized). A split of a streamed
  dataset is one of these, and so every batch is ``transform(base[positions[rows]])``:
  the same expression that builds the in-memory split, applied to fewer rows.
- any NumPy array (the in-memory form).

:func:`take` reads rows of any of them; :func:`chunks` walks one in bounded pieces
(checks and statistics over data that does not fit in memory).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["FileArray", "SplitView", "chunks", "is_streamed", "row_index", "take"]

#: Rows per piece when a whole array-like is walked (checks, statistics, materializing).
CHUNK_ROWS = 2048


def is_streamed(array: Any) -> bool:
    """Whether ``array`` is read on demand (an array-like of this module) rather than held in memory."""
    return isinstance(array, (FileArray, SplitView))


def row_index(index: Any, length: int) -> np.ndarray | slice | int:
    """``index`` as an int, a slice, or an int64 array of non-negative row numbers."""
    if isinstance(index, (int, np.integer)):
        i = int(index)
        if not -length <= i < length:
            raise IndexError(f"index {i} is out of bounds for {length} rows")
        return i % length if length else i
    if isinstance(index, slice):
        return index
    rows = np.asarray(index)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise IndexError(f"rows are read with an int, a slice or a 1-D integer array; got {index!r:.80}")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < -length or rows.max() >= length):
        raise IndexError(f"row index out of bounds for {length} rows")
    return np.where(rows < 0, rows + length, rows)


def take(array: Any, rows: Any) -> np.ndarray:
    """Rows of an array or array-like, in the order ``rows`` gives, as a NumPy array."""
    return np.asarray(array[rows])


def chunks(array: Any, size: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """``array`` in consecutive pieces of at most ``size`` rows (NumPy arrays)."""
    for start in range(0, len(array), size):
        yield take(array, slice(start, start + size))


class FileArray:
    """An array in a file (C order), whose rows are read with positional reads (``pread``).

    Args:
        path: The file.
        offset: Where the array's bytes start (after the ``.npy`` header).
        shape: Its shape; rows are the first axis.
        dtype: Its dtype (never object: nothing here is unpickled).

    ``a[index]`` reads the rows asked for into a new array. The reads go through the
    operating system's page cache, which every process reading the file shares; unlike
    touching a memory map, they add nothing to the process's resident memory (a map's
    pages stay resident, and each fault maps its neighbours too: 20,000 random rows of
    12 KB left 600 MB resident, docs/benchmarks.md). Threads may read at once.
    Pickling keeps the path, so a worker process opens the file itself.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, shape: tuple[int, ...], dtype: Any):
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        if self.dtype.hasobject:
            raise ValueError(f"FileArray never reads Python objects. Received: dtype={self.dtype}")
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # for platforms without pread (seek + read)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        size = os.fstat(self._fd).st_size
        if size < self.offset + self.row_bytes * (self.shape[0] if self.shape else 0):
            raise DataError(f"data: {self.path} is shorter than its {self.shape} array (truncated?); "
                            "remove it (cnnkeras cache clear) and run again")

    @classmethod
    def npy(cls, path: str | os.PathLike[str]) -> FileArray:
        """The array of a ``.npy`` file (C order)."""
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(handle)
            offset = handle.tell()
        if fortran:
            raise ValueError(f"{path} is stored in Fortran order; cnnkeras reads C-order arrays")
        return cls(path, offset, shape, dtype)

    def reshaped(self, shape: tuple[int, ...]) -> FileArray:
        """The same bytes with another shape of as many elements ((N, H, W) as (N, H, W, 1))."""
        if int(np.prod(shape)) != int(np.prod(self.shape)):
            raise ValueError(f"cannot view {self.shape} as {shape}")
        return FileArray(self.path, self.offset, shape, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, buffer: np.ndarray, first_row: int) -> None:
        """Fill ``buffer`` (C-contiguous, whole rows) from row ``first_row`` on."""
        # ndarray has the buffer protocol; numpy's stubs declare its __buffer__ only for Python >= 3.12
        view = memoryview(buffer.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        position = self.offset + first_row * self.row_bytes
        while len(view):
            if hasattr(os, "preadv"):
                done = os.preadv(self._fd, [view], position)
            else:  # pragma: no cover (Windows)
                with self._lock:
                    os.lseek(self._fd, position, os.SEEK_SET)
                    data = os.read(self._fd, len(view))
                    view[:len(data)] = data
                    done = len(data)
            if done <= 0:
                raise DataError(f"data: {self.path} ended early (truncated?); remove it (cnnkeras cache clear) "
                                "and run again")
            view, position = view[done:], position + done

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = row_index(index, len(self))
        if isinstance(rows, int):
            out = np.empty(self.shape[1:], self.dtype)
            self._read(out, rows)
            return out
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:
                out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
                if len(out):
                    self._read(out, start)
                return out
            rows = np.arange(start, stop, step, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        k = 0
        while k < len(rows):  # runs of consecutive rows in one read each
            end = k + 1
            while end < len(rows) and rows[end] == rows[end - 1] + 1:
                end += 1
            self._read(out[k:end], int(rows[k]))
            k = end
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "offset": self.offset, "shape": self.shape, "dtype": self.dtype.str}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.offset, self.shape = state["path"], state["offset"], tuple(state["shape"])
        self.dtype = np.dtype(state["dtype"])
        self._open()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"FileArray({self.path!r}, shape={self.shape}, dtype={self.dtype})"


class SplitView:
    """Rows ``positions`` of ``base``, turned into model input by ``transform`` when read.

    Args:
        base: An array or array-like (rows on the first axis).
        positions: The split's rows of ``base``, in the split's order.
        transform: Maps a batch of ``base`` rows to the batch the model gets
            (for images: float32, resized, normalized); must act row by row.
        shape: The shape of one transformed row.
        dtype: The dtype ``transform`` returns.

    Output shape:
        ``view[rows]`` is ``(len(rows), *shape)``.
    """

    def __init__(self, base: Any, positions: np.ndarray, transform: Callable[[np.ndarray], np.ndarray],
                 shape: tuple[int, ...], dtype: Any):
        self.base = base
        self.positions = np.asarray(positions, dtype=np.int64)
        self.transform = transform
        self.shape = (len(self.positions), *tuple(int(d) for d in shape))
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = row_index(index, len(self))
        if isinstance(rows, int):
            return self[np.array([rows])][0]
        wanted = self.positions[rows]
        if wanted.size == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        order = np.argsort(wanted, kind="stable")
        if np.all(order[1:] > order[:-1]):  # already sorted: read as is
            return self.transform(take(self.base, wanted))
        batch = self.transform(take(self.base, wanted[order]))  # read in file order, then put back
        out = np.empty_like(batch)
        out[order] = batch
        return out

    def __repr__(self) -> str:
        return f"SplitView({len(self)} rows of {self.base!r})"
