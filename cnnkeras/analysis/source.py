"""What a user can point the analysis at: an experiment file, an Optuna study, or an MLflow experiment.

:func:`resolve` turns that into a :class:`RunSource`: the MLflow experiment and
tracking URI to read, the sweep's parent run (so that only that study's trials are
read, not every run that ever went into the experiment), the study itself and the
experiment config (which carries the search space and the report's claims).

Resolution order for ``target``:

1. an existing file: the experiment config (its study when it has ``search:``);
2. a study name, in ``storage`` or the default ``.cnnkeras/<name>.journal``;
3. an MLflow experiment name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import config_from_dict, load_config
from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError
from ..studies.storage import PARENT_ATTR
from ..studies.study import find_study, named_study_storage
from ..tracking.values import redact

__all__ = ["RunSource", "resolve"]


@dataclass
class RunSource:
    """Where the runs of a report or frame come from."""

    label: str
    experiment: str
    uri: str | None = None
    parent_run_id: str | None = None
    study: Any = None
    storage: str | None = None
    config: ExperimentConfig | None = None

    @property
    def swept(self) -> list[str]:
        """The swept key paths, when the config is known."""
        return list(self.config.search.parameters) if self.config and self.config.search else []


def resolve(target: str | os.PathLike[str] | RunSource, *, uri: str | None = None,
            storage: str | None = None) -> RunSource:
    """The :class:`RunSource` that ``target`` names (see the module docstring)."""
    if isinstance(target, RunSource):
        return target
    text = str(target)
    if os.path.isfile(text):

        config = load_config(text)
        if config.search is None:
            return RunSource(Path(text).stem, config.tracking.experiment or config.name,
                             uri or config.tracking.uri, config=config)
        study, storage = find_study(text, storage)
        return _from_study(study, storage, uri, config)
    where = named_study_storage(text, storage)
    if storage is not None or "://" in where or os.path.exists(where):
        study, storage = find_study(text, storage)
        return _from_study(study, storage, uri, None)
    return RunSource(text, text, uri)


def _from_study(study: Any, storage: str, uri: str | None, config: ExperimentConfig | None) -> RunSource:
    if config is None:
        raw = study.user_attrs.get("config")
        if raw is None:
            raise CnnkerasError(f"study {study.study_name} in {redact(storage)} was not made by cnnkeras (no config)")
        config = config_from_dict(raw)
    parent = study.user_attrs.get(PARENT_ATTR)
    if parent is None:
        raise CnnkerasError(f"study {study.study_name} was swept with tracking off: there are no MLflow runs to read")
    return RunSource(study.study_name, config.tracking.experiment or config.name, uri or config.tracking.uri,
                     parent_run_id=parent, study=study, storage=redact(storage), config=config)
