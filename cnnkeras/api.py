"""The public functions behind every CLI command (each CLI command has its twin here).

``load_config`` and ``config_from_dict`` are :mod:`cnnkeras.config`'s own: one loader
with every check (the package root registers the zoo's), so ``validate`` catches
everything a run would refuse, before anything trains.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backend import use_backend
from .config import config_from_dict, load_config
from .config.schema import ExperimentConfig
from .lazy import lazy_import

# The heavy parts, imported when a command needs them (validate and schema need none).
data_cache = lazy_import("cnnkeras.data.cache")
keras = lazy_import("keras")
layers = lazy_import("cnnkeras.layers")
studies_sweep = lazy_import("cnnkeras.studies.sweep")
runner = lazy_import("cnnkeras.runner")
server = lazy_import("cnnkeras.dashboards.server")
tracking = lazy_import("cnnkeras.tracking")

__all__ = ["cache_clear", "cache_list", "config_from_dict", "grant", "load_config", "load_model", "reproduce",
           "resolved_tracking", "run", "schema", "sweep", "ui", "validate"]


def _config(config: ExperimentConfig | str | os.PathLike[str], overrides: Sequence[str]) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        if overrides:
            raise TypeError("overrides go with a path; apply them to a loaded config with "
                            "cnnkeras.config_from_dict(config.to_dict(), overrides)")
        return config
    return load_config(config, overrides)


def resolved_tracking(config: ExperimentConfig) -> ExperimentConfig:
    """The config with its tracking URI made explicit: ``tracking.uri`` (the config key, or the
    ``--tracking-uri`` flag, which sets it), else ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``.

    Resolved once, here, so that every process of a run or sweep (trial workers, the clean-up
    of a dead worker's runs) uses the same store, however the user gave it.
    """
    if not config.tracking.enabled or config.tracking.uri:
        return config
    uri = tracking.default_tracking_uri(None)
    return config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": uri})})


def run(config: ExperimentConfig | str | os.PathLike[str], overrides: Sequence[str] = (), **options: Any) -> Any:
    """Train and evaluate one experiment (a path with ``key.path=value`` overrides, or a loaded config).

    The options are :func:`cnnkeras.runner.run`'s (``progress``, ``callbacks``, ``listeners``, ...).
    """
    cfg = resolved_tracking(_config(config, overrides))
    use_backend(cfg.backend, tracking_uri=cfg.tracking.uri)  # before anything imports Keras
    return runner.run(cfg, **options)


def sweep(config: ExperimentConfig | str | os.PathLike[str], overrides: Sequence[str] = (), **options: Any) -> Any:
    """Run or resume a config's Optuna sweep (a path with overrides, or a loaded config).

    The options are :func:`cnnkeras.studies.sweep.sweep`'s (``jobs``, ``n_trials``, ``progress``).
    """
    cfg = resolved_tracking(_config(config, overrides))
    use_backend(cfg.backend, tracking_uri=cfg.tracking.uri)  # trial processes inherit it
    return studies_sweep.sweep(cfg, **options)


def reproduce(run_id: str, *, uri: str | None = None, tolerance: float = 0.0, progress: bool = True) -> Any:
    """Re-run a logged run from its saved config, on the backend it ran on, and compare every metric."""
    original = tracking.read_run(run_id, uri=uri)  # read once: the runner compares against it
    use_backend(original["tags"].get("cnnkeras.backend"), tracking_uri=tracking.default_tracking_uri(uri))
    return runner.reproduce(run_id, uri=uri, tolerance=tolerance, progress=progress, original=original)


def grant(user: str, experiment: str, *, permission: str = "EDIT", uri: str | None = None) -> str:
    """Let ``user`` write to ``experiment`` on an MLflow server with logins (run as its owner or an admin)."""
    return tracking.grant(user, experiment, permission=permission, uri=uri)


def validate(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Check a config completely without running it; raises ConfigError listing every problem."""
    return load_config(path, overrides)


def schema() -> dict[str, Any]:
    """The JSON schema of experiment files."""
    return ExperimentConfig.model_json_schema()


def cache_list(cache_dir: str | os.PathLike[str] | None = None, *, check: bool = True) -> list[Any]:
    """The decoded cache's entries (``cnnkeras cache list``), newest first: each a
    :class:`~cnnkeras.data.cache.CacheEntry` with its folder, ``meta`` (source, shape, when and how long
    it took to decode), ``size_bytes`` and ``status`` (current, or stale when its files changed since).

    ``cache_dir`` defaults to $CNNKERAS_CACHE_DIR, else ~/.cache/cnnkeras/data.
    """
    return data_cache.list_cache(cache_dir, check=check)


def cache_clear(names: Sequence[str] = (), *, stale: bool = False, everything: bool = False,
                cache_dir: str | os.PathLike[str] | None = None) -> list[Any]:
    """Remove decoded-cache entries (``cnnkeras cache clear``): those ``names``d, the ``stale`` ones
    (files changed, source gone, or left by a killed decode), or ``everything``. Returns the removed
    entries; an entry being decoded right now is left alone."""
    if not names and not stale and not everything:
        raise ValueError("say what to clear: names, stale=True or everything=True")
    return data_cache.clear_cache(cache_dir, names=list(names) or None, stale=stale and not names)


def cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The decoded cache's folder: ``cache_dir``, else $CNNKERAS_CACHE_DIR, else ~/.cache/cnnkeras/data."""
    return data_cache.cache_root(cache_dir)


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` model saved by cnnkeras, always with ``safe_mode=True``."""
    layers.get_layer_class("conv2d")  # importing the package registers the custom layers for deserialization
    return keras.saving.load_model(Path(path), safe_mode=True)


def ui(*, root: str | os.PathLike[str] = ".", uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
       reports: str | os.PathLike[str] = "reports", storages: Sequence[str] = (), mlflow_url: str | None = None,
       wait: bool = True) -> Any:
    """Serve the landing page, the MLflow UI, optuna-dashboard and the reports on ``host``.

    Returns the running :class:`cnnkeras.dashboards.server.Dashboards` when ``wait`` is
    False; otherwise blocks until Ctrl-C and stops everything.
    """
    running = server.serve(root=root, uri=uri, host=host, port=port, reports=reports, storages=storages,
                    mlflow_url=mlflow_url)
    if not wait:
        return running
    print(f"cnnkeras dashboards on {running.landing} (MLflow UI at {running.mlflow}, "
          f"{len(running.storages)} study storage(s)); Ctrl-C stops them", flush=True)

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM (docker stop, systemd) stops everything as Ctrl-C does

    previous = signal.signal(signal.SIGTERM, stop_on_term) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return running
