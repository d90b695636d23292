"""Every exception cnnkeras raises on purpose, each with the exit code the CLI uses.

A user can cause all of these (a config mistake, unreadable data, a model that cannot
take the data's shape, a server that refuses the login); the CLI prints the message as
one line, without a traceback (``--verbose`` shows it), and exits with ``exit_code``.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["BackendError", "CnnkerasError", "DataError", "ModelError", "StorageUnavailable", "SweepInterrupted",
           "TrackingError", "TrainingDiverged", "UnknownName", "UnreadableImage"]


class CnnkerasError(Exception):
    """Root of every error cnnkeras raises on purpose (exit code 2)."""

    exit_code = 2


class UnknownName(CnnkerasError, KeyError):
    """A name not in a registry (architecture, layer, block); the message names the nearest ones.

    Also a ``KeyError``, as a registry lookup is, so ``except KeyError`` keeps working.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BackendError(CnnkerasError):
    """The Keras backend asked for is not installed, or Keras is already loaded with another one."""


class DataError(CnnkerasError):
    """The data named by a config cannot be loaded or does not fit the model."""


class UnreadableImage(DataError):
    """An image (or mask) file that cannot be decoded, met while loading or mid-stream; ``path`` names it."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class ModelError(CnnkerasError):
    """A model cannot be built from its config (for example an input too small)."""


class TrackingError(CnnkerasError):
    """MLflow could not be reached or refused the login, or a run asked for does not exist."""


class StorageUnavailable(CnnkerasError):
    """The study storage (a database) stayed unreachable longer than the sweep waits for it."""


class TrainingDiverged(CnnkerasError):
    """The loss became NaN or infinite; the run was recorded as FAILED (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id


class SweepInterrupted(CnnkerasError):
    """A stop signal: the running trials are FAIL and queued again, their runs KILLED; the message says how to
    resume. The exit code is the signal's: 130 (Ctrl-C), 143 (SIGTERM), 129 (SIGHUP)."""

    exit_code = 130

    def __init__(self, message: str, *, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code
