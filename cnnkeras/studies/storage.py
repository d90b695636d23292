"""Where a study lives, and how a sweep process shares it safely with others.

Two kinds of storage, chosen by ``search.storage``:

- a **journal file** (the default, ``.cnnkeras/<study>.journal`` beside the
  experiment file): one ``cnnkeras sweep`` process at a time. :class:`JournalLock`
  holds an exclusive lock on ``<journal>.sweep.lock`` for the whole sweep, so a second
  process is refused with one line instead of mistaking the first one's live trial
  for a dead one.
- an **RDB URL** (PostgreSQL: ``postgresql+psycopg://user:pw@host/db``): any number
  of processes on any number of machines. :class:`ResilientStorage` is Optuna's
  ``RDBStorage`` with ``pool_pre_ping`` and every storage call retried with
  backoff on connection errors (a restart, a short outage), for up to
  ``wait_s`` seconds; then :class:`~cnnkeras.errors.StorageUnavailable`, one line. A
  refused login is not an outage: it is that one line at once. Which RUNNING trials
  belong to dead processes is told by cnnkeras' heartbeats
  (:mod:`cnnkeras.studies.recovery`).

:func:`setup_lock` serializes study set-up across processes (PostgreSQL advisory
lock); :func:`claim_worker` gives each process that joins a study its own index,
from which :func:`sampler_seed` derives the process's sampler seed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ..errors import CnnkerasError, StorageUnavailable
from ..tracking.values import redact

__all__ = ["RETRIED", "JournalLock", "ResilientRDBStorage", "ResilientStorage", "check_journal", "claim_worker", "is_journal",
           "open_storage", "sampler_seed", "setup_lock"]

PARENT_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run
STALE_ATTR = "stale"  # a trial whose process died; retried, and not counted
REASON_ATTR = "reason"
WORKERS_ATTR = "workers"  # how many sweep processes have joined the study so far

#: Longest wait, by default, for a database storage to come back.
WAIT_S = 300.0


def is_journal(storage: str) -> bool:
    """A journal file path (anything that is not a ``scheme://`` URL)."""
    return "://" not in storage


# ---------------------------------------------------------------------- retries


def _is_transient(exc: BaseException | None) -> bool:
    """A connection that broke or could not be made: worth waiting for (not a wrong query)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in ("OperationalError",
                                                                                 "InterfaceError"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _Outage:
    """Says once per outage that the storage is away, and when it is back (stderr, one line each)."""

    def __init__(self, shown: str):
        self.shown = shown
        self.since: float | None = None
        self.lock = threading.Lock()

    def start(self, exc: BaseException, wait_s: float) -> None:
        with self.lock:
            if self.since is None:
                self.since = time.monotonic()
                print(f"storage {self.shown} unreachable ({type(exc).__name__}); waiting up to {wait_s:.0f} s",
                      file=sys.stderr, flush=True)

    def end(self) -> None:
        with self.lock:
            if self.since is not None:
                print(f"storage {self.shown} is back after {time.monotonic() - self.since:.0f} s",
                      file=sys.stderr, flush=True)
                self.since = None


class ResilientStorage(BaseStorage):
    """Optuna's ``RDBStorage``, behind a storage that waits out a database restart or outage.

    Args:
        url: SQLAlchemy URL (``postgresql+psycopg://...``, ``sqlite:///...``).
        wait_s: Longest wait for the database to come back, per call; then
            :class:`~cnnkeras.errors.StorageUnavailable`.

    It implements Optuna's public ``BaseStorage`` contract, every method by name, each call
    handed to the ``RDBStorage`` inside and retried on connection errors
    (``tests/unit/test_storage_contract.py`` checks that none of the installed Optuna's is
    missed, and that it answers as ``RDBStorage`` does, pickling included). It is not an
    ``RDBStorage`` itself on purpose: Optuna puts a cache in front of those whose misses call
    ``RDBStorage``'s private methods, which no retry here could reach (a restart during one
    failed the trial). A call that committed but lost its answer is not repeated blindly: a
    repeated ``set_trial_state_values`` that finds the trial already in the state it asked for
    counts as done. (A repeated ``create_new_trial`` can leave one unused RUNNING trial; it
    never gets a heartbeat, so the next look at the study fails it as dead.) Heartbeats are
    cnnkeras' own (:mod:`cnnkeras.studies.recovery`), not Optuna's.
    """

    def __init__(self, url: str, *, wait_s: float = WAIT_S):
        self.url, self.wait_s = url, wait_s
        self._outage = _Outage(redact(url))
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": 5}
        self.rdb: RDBStorage = self._retry(lambda: RDBStorage(url, engine_kwargs=engine_kwargs))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_outage", None)  # holds a lock; made anew on the other side
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._outage = _Outage(redact(self.url))

    def remove_session(self) -> None:
        self.rdb.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state: Any) -> None:
        self.rdb.check_trial_is_updatable(trial_id, trial_state)

    def _retry(self, call: Callable[[], Any], *, on_repeat: Callable[[BaseException], Any] | None = None) -> Any:
        deadline = time.monotonic() + self.wait_s
        delay, attempt = 0.5, 0
        while True:
            try:
                result = call()
            except optuna.exceptions.UpdateFinishedTrialError as exc:
                if attempt and on_repeat is not None:  # the first attempt committed before the connection broke
                    return on_repeat(exc)
                raise
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                if _is_login_failure(exc):
                    raise StorageUnavailable(f"storage {self._outage.shown}: the database refused the login "
                                             f"({_first_line(exc)}); check the user and password in the URL") \
                        from None
                if time.monotonic() >= deadline:
                    raise StorageUnavailable(
                        f"storage {self._outage.shown} stayed unreachable for {self.wait_s:.0f} s "
                        f"({type(exc).__name__}); the sweep can be resumed with the same command") from None
                self._outage.start(exc, self.wait_s)
                if getattr(self, "rdb", None) is not None:
                    try:
                        self.rdb.remove_session()
                    except Exception:  # a broken session may refuse to close; a new one is made anyway
                        pass
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
                attempt += 1
                continue
            self._outage.end()
            return result

    # -- studies
    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        return self._retry(lambda: self.rdb.create_new_study(directions, study_name))

    def delete_study(self, study_id: int) -> None:
        self._retry(lambda: self.rdb.delete_study(study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self.rdb.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self.rdb.set_study_system_attr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._retry(lambda: self.rdb.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._retry(lambda: self.rdb.get_study_name_from_id(study_id))

    def get_study_directions(self, study_id: int) -> Any:
        return self._retry(lambda: self.rdb.get_study_directions(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retry(lambda: self.rdb.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retry(lambda: self.rdb.get_study_system_attrs(study_id))

    def get_all_studies(self) -> Any:
        return self._retry(lambda: self.rdb.get_all_studies())

    # -- trials
    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        return self._retry(lambda: self.rdb.create_new_trial(study_id, template_trial))

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: Any) -> None:
        self._retry(lambda: self.rdb.set_trial_param(trial_id, param_name, param_value_internal,
                                                       distribution))

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._retry(lambda: self.rdb.get_trial_id_from_study_id_trial_number(study_id, trial_number))

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._retry(lambda: self.rdb.get_trial_number_from_id(trial_id))

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._retry(lambda: self.rdb.get_trial_param(trial_id, param_name))

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        def already(exc: BaseException) -> bool:
            if self.rdb.get_trial(trial_id).state == state:
                return True
            raise exc

        return self._retry(lambda: self.rdb.set_trial_state_values(trial_id, state, values),
                           on_repeat=already)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._retry(lambda: self.rdb.set_trial_intermediate_value(trial_id, step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self.rdb.set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self.rdb.set_trial_system_attr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> Any:
        return self._retry(lambda: self.rdb.get_trial(trial_id))

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> Any:
        return self._retry(lambda: self.rdb.get_all_trials(study_id, deepcopy, states))

    def get_n_trials(self, study_id: int, state: Any = None) -> int:
        return self._retry(lambda: self.rdb.get_n_trials(study_id, state))

    def get_best_trial(self, study_id: int) -> Any:
        return self._retry(lambda: self.rdb.get_best_trial(study_id))

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._retry(lambda: self.rdb.get_trial_params(trial_id))

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._retry(lambda: self.rdb.get_trial_user_attrs(trial_id))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._retry(lambda: self.rdb.get_trial_system_attrs(trial_id))


#: The storage methods retried on connection errors (checked against Optuna's by a test).
RETRIED = tuple(name for name, value in vars(ResilientStorage).items()
                if callable(value) and not name.startswith("_") and name not in ("remove_session",
                                                                                  "check_trial_is_updatable"))

#: The name it had while it was a subclass of ``RDBStorage``.
ResilientRDBStorage = ResilientStorage


def _is_login_failure(exc: BaseException) -> bool:
    """A refused login (wrong password, unknown user): permanent, unlike an outage."""
    text = str(exc).lower()
    return any(marker in text for marker in ("password authentication failed", "no password supplied",
                                             "role \"", "authentication failed", "pg_hba.conf"))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)[:200]


# ---------------------------------------------------------------------- journal


class JournalLock:
    """An exclusive lock on ``<journal>.sweep.lock`` for as long as one sweep uses the journal.

    (Not ``<journal>.lock``: that name is Optuna's own lock for each journal write.)

    ``fcntl.flock`` is released by the kernel when the process dies, even by SIGKILL,
    so a killed sweep never leaves the journal locked.
    """

    def __init__(self, journal: str | os.PathLike[str]):
        self.journal = Path(journal)
        self.path = Path(f"{journal}.sweep.lock")
        self._handle: Any = None

    def acquire(self) -> JournalLock:
        import fcntl  # POSIX only: imported where used, so the module imports on any platform

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CnnkerasError(
                f"{self.journal} is in use by a running sweep ({holder}); a journal file takes one "
                "sweep process at a time: wait for it, stop it, or use a PostgreSQL storage for several workers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> JournalLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_journal(journal: str | os.PathLike[str], *, repair: bool) -> str | None:
    """Refuse a corrupt journal in one line; with ``repair``, cut a torn last record off.

    A crash while writing leaves a partial last line: Optuna still reads the journal,
    but the next append would be glued onto it and every later read would fail. With
    ``repair`` (only by a sweep holding the :class:`JournalLock`, so no live writer is cut
    off), the file is first copied to ``<journal>.torn-<time>.bak`` and then cut back to its
    last complete record; the returned line says so. A record that is not JSON anywhere
    else means real damage: :class:`~cnnkeras.errors.CnnkerasError`, the file untouched.
    """
    path = Path(journal)
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    complete, _, tail = data.rpartition(b"\n")
    for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
        try:
            json.loads(line)
        except ValueError:
            raise CnnkerasError(f"{path} is corrupt at line {number} (not a journal record); it was left as it is: "
                                "restore it from a backup, or remove that line to keep the trials around it") from None
    if not tail:
        return None
    if not repair:
        return None  # a reader: Optuna ignores an unfinished last record
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    kept = len(complete) + 1 if complete else 0
    with open(path, "r+b") as handle:
        handle.truncate(kept)
    records = complete.count(b"\n") + 1 if complete else 0
    return (f"{path} ended in a partial record (a crash while writing): kept its {records} complete records; "
            f"the original is in {backup.name}")


# ---------------------------------------------------------------------- opening


def open_storage(storage: str, *, wait_s: float = WAIT_S) -> Any:
    """An Optuna storage for a journal path or an RDB URL (see the module docstring)."""
    if is_journal(storage):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(storage))
        except ValueError:  # a record Optuna cannot read: name its line, in one line
            check_journal(storage, repair=False)
            raise
    return ResilientStorage(storage, wait_s=wait_s)


@contextmanager
def setup_lock(storage: str, name: str, *, wait_s: float = WAIT_S) -> Iterator[None]:
    """Serialize study set-up (tables, study, parent run, dead trials, worker index) across processes.

    On PostgreSQL a session advisory lock keyed by the study name: sweep processes
    started at the same instant would otherwise race to create the schema and two
    parent runs. Waiting for it is bounded by ``wait_s`` (``search.storage_wait_s``), after
    which one line says which study's set-up is held. A journal is locked for the whole
    sweep by :class:`JournalLock`; SQLite belongs to one machine and takes no lock.
    """
    if not storage.startswith("postgresql"):
        yield
        return
    key = zlib.crc32(f"cnnkeras-study:{name}".encode())
    engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args={"connect_timeout": 5})
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                connection = engine.connect()
                break
            except sqlalchemy.exc.OperationalError as exc:
                if _is_login_failure(exc):
                    raise StorageUnavailable(f"storage {redact(storage)}: the database refused the login "
                                             f"({_first_line(exc)}); check the user and password in the URL") from None
                if time.monotonic() >= deadline:
                    raise StorageUnavailable(f"storage {redact(storage)} is unreachable "
                                             f"({type(exc).__name__}) after {wait_s:.0f} s") from None
                time.sleep(1.0)
        with connection:
            while not connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"),
                                         {"key": key}).scalar():
                if time.monotonic() >= deadline:
                    raise StorageUnavailable(f"study {name}: another sweep process held its set-up lock for over "
                                             f"{wait_s:.0f} s (search.storage_wait_s); is one stuck?")
                time.sleep(0.2)
            try:
                yield
            finally:
                try:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except sqlalchemy.exc.DBAPIError:
                    pass  # the connection broke: the server has released the lock with it
    finally:
        engine.dispose()


def claim_worker(study: Any) -> int:
    """This process's index among those that joined ``study`` (0 for the first), counted in the study.

    Call it under :func:`setup_lock` (or a :class:`JournalLock`), so two processes never
    claim the same index.
    """
    index = int(study.user_attrs.get(WORKERS_ATTR, 0))
    study.set_user_attr(WORKERS_ATTR, index + 1)
    return index


def sampler_seed(seed: int, worker: int) -> int:
    """The sampler seed of worker ``worker``: the config's seed for the first, a derived one after.

    Workers seeded alike draw the same parameters from the same history (and a resumed
    sweep would repeat its first trials), so every later process gets its own seed,
    derived from the config's seed and its index: reproducible, and recorded on each trial.
    """
    if worker == 0:
        return seed
    return int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])
