"""Finding and opening a study: its name, its storage, its sampler and pruner.

The storage is the config's ``search.storage``, else ``$CNNKERAS_STORAGE``, else a
journal file ``.cnnkeras/<study>.journal`` beside the experiment file (see
:mod:`cnnkeras.studies.storage` for what each kind guarantees). :func:`load_study`
creates or loads the study with the sampler seed of one sweep process;
:func:`find_study` opens an existing one for ``best``, ``runs`` and ``report``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna

from ..config import load_config
from ..config.schema import CategoricalParam, ExperimentConfig
from ..errors import CnnkerasError
from ..tracking.values import redact
from .storage import is_journal, open_storage, sampler_seed

__all__ = ["base_seed", "find_study", "load_study", "make_sampler", "named_study_storage", "open_study",
           "storage_for", "study_name"]


def study_name(config: ExperimentConfig) -> str:
    """The config's study name: ``search.study_name``, else the experiment's name."""
    assert config.search is not None
    return config.search.study_name or config.name


def storage_for(config: ExperimentConfig) -> str:
    """The study's storage: ``search.storage``, else ``$CNNKERAS_STORAGE``, else a journal beside the file."""
    search = config.search
    assert search is not None
    if search.storage:
        return search.storage
    if os.environ.get("CNNKERAS_STORAGE"):
        return os.environ["CNNKERAS_STORAGE"]
    folder = Path(config._source.file).resolve().parent if config._source and config._source.file else Path.cwd()
    return str(folder / ".cnnkeras" / f"{study_name(config)}.journal")


def make_sampler(config: ExperimentConfig, seed: int) -> Any:
    assert config.search is not None  # a study's config has a search: section
    s = config.search.sampler
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        space = {}
        for path, p in config.search.parameters.items():
            if not isinstance(p, CategoricalParam):
                raise CnnkerasError(f"search.parameters.{path}: the grid sampler needs categorical parameters")
            space[path] = list(p.choices)
        return _Grid(space, seed=seed)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its ``study.stop()`` once the grid is covered: that call is only
    allowed inside ``study.optimize``, and cnnkeras' loop asks and tells; it stops asking when the
    grid ``is_exhausted`` (:mod:`cnnkeras.studies.scheduler`)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        pass


def _pruner(config: ExperimentConfig) -> Any:
    assert config.search is not None  # a study's config has a search: section
    p = config.search.pruner
    if p.name == "none" or len(config.search.objectives) > 1:
        return optuna.pruners.NopPruner()
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, p.warmup_epochs))
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs), max_resource=config.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)


def base_seed(config: ExperimentConfig) -> int:
    assert config.search is not None  # a study's config has a search: section
    s = config.search.sampler
    return s.seed if s.seed is not None else config.seed


def open_study(config: ExperimentConfig, storage: str | None = None) -> tuple[Any, Any]:
    """Create or load the config's study: ``(study, the storage object it was opened with)``.

    The study gets the first sweep process's sampler (the config's seed); a sweep process
    replaces it with its own once it has claimed its index in the study.
    """
    assert config.search is not None
    storage = storage or storage_for(config)
    store = open_storage(storage, wait_s=config.search.storage_wait_s)
    try:
        study = optuna.create_study(
            study_name=study_name(config), storage=store,
            sampler=make_sampler(config, sampler_seed(base_seed(config), 0)), pruner=_pruner(config),
            directions=[o.direction for o in config.search.objectives], load_if_exists=True,
        )
    except ValueError as exc:  # e.g. the stored study has other directions
        raise CnnkerasError(f"study {study_name(config)} in {redact(storage)}: {exc}") from None
    return study, store


def load_study(config: ExperimentConfig) -> Any:
    """Create or load the config's study (see :func:`open_study`)."""
    return open_study(config)[0]


def named_study_storage(name: str, storage: str | None = None) -> str:
    """Where a study known only by its name lives: ``storage``, else ``$CNNKERAS_STORAGE``, else
    ``.cnnkeras/<name>.journal`` in the working directory."""
    return storage or os.environ.get("CNNKERAS_STORAGE") or str(Path(".cnnkeras") / f"{name}.journal")


def find_study(target: str, storage: str | None = None) -> tuple[Any, str]:
    """The study named by ``target``: an experiment file with a search: section, or a study name.

    A study name is looked up in ``storage`` (default ``$CNNKERAS_STORAGE``, else
    ``.cnnkeras/<name>.journal``).
    """


    def open_existing(name: str, where: str, missing: str) -> tuple[Any, str]:
        if is_journal(where) and not os.path.exists(where):
            raise CnnkerasError(f"{missing} (no {where})")
        try:
            return optuna.load_study(study_name=name, storage=open_storage(where)), where
        except KeyError:
            raise CnnkerasError(f"{missing} (not in {redact(where)})") from None

    if os.path.isfile(target):
        config = load_config(target)
        if config.search is None:
            raise CnnkerasError(f"{target} has no search: section")
        name = study_name(config)
        return open_existing(name, storage_for(config),
                             f"study {name} has not been swept yet; run: cnnkeras sweep {target}")
    return open_existing(target, named_study_storage(target, storage),
                         f"no study named {target!r}; pass the experiment file, or the study's --storage")


