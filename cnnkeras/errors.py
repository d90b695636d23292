"""The one root exception of cnnkeras and its few subclasses.

Every error a user can cause (a config mistake, unreadable data, a model that
cannot take the data's shape) is a :class:`CnnkerasError`; the CLI prints its
message without a traceback and exits with status 2. Anything else is a bug.
"""

from __future__ import annotations

__all__ = ["CnnkerasError", "DataError", "ModelError", "StorageUnavailable", "TrackingError"]


class CnnkerasError(Exception):
    """Root of every error cnnkeras raises on purpose."""


class DataError(CnnkerasError):
    """The data named by a config cannot be loaded or does not fit the model."""


class ModelError(CnnkerasError):
    """A model cannot be built from its config (for example an input too small)."""


class TrackingError(CnnkerasError):
    """MLflow could not be reached, or a run asked for does not exist."""


class StorageUnavailable(CnnkerasError):
    """The study storage (a database) stayed unreachable longer than the sweep waits for it."""
