"""Where a command writes a file the user named: an existing folder, never one made silently.

``cnnkeras report --out DIR/r.html`` and ``cnnkeras runs --out DIR/r.csv`` write into a
folder that must exist: a typo in the path is one line, not a new tree of folders. Only the
defaults cnnkeras documents (``reports/``) are created, and the command says where it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CnnkerasError

__all__ = ["output_path"]


def output_path(path: str | os.PathLike[str], *, what: str = "the file", create_parent: bool = False) -> Path:
    """``path`` ready to be written: its folder exists (made only when ``create_parent``, for a default)."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise CnnkerasError(f"cannot write {what} to {path}: it is a folder; name a file")
    parent = path.parent
    if create_parent:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CnnkerasError(f"cannot create {parent}: {exc.strerror or exc}") from None
    elif not parent.is_dir():
        raise CnnkerasError(f"cannot write {what} to {path}: the folder {parent} does not exist (create it "
                            "first; cnnkeras never makes folders for a path you name)")
    return path
