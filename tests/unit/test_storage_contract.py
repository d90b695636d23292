"""The resilient storage keeps every contract of Optuna's storage that ``RDBStorage`` keeps.

``ResilientRDBStorage`` overrides each storage method by name to retry it on connection
errors. If an Optuna release adds or renames a method, the first test names it; the
others run the same operations on Optuna's ``RDBStorage`` and on ours (SQLite files) and
compare what they return, pickling included (Optuna pickles storages for its own
multiprocessing paths and some samplers).
"""

from __future__ import annotations

import pickle

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from cnnkeras.studies.storage import RETRIED, ResilientRDBStorage

#: RDBStorage methods deliberately not retried, and why.
NOT_RETRIED = {
    "check_trial_is_updatable": "checks a state value in memory, no database",
    "remove_session": "drops the session: nothing to retry",
    "upgrade": "schema migration, run by hand (optuna storage upgrade)",
    "get_current_version": "schema version (migrations)",
    "get_head_version": "schema version (migrations)",
    "get_all_versions": "schema version (migrations)",
    "record_heartbeat": "cnnkeras keeps its own heartbeats (cnnkeras/studies/recovery.py)",
    "get_heartbeat_interval": "Optuna's heartbeats are off",
    "get_failed_trial_callback": "Optuna's heartbeats are off",
    "get_heartbeat_stale_trial_callback": "Optuna's heartbeats are off",
}


def test_every_storage_method_of_this_optuna_is_retried_or_left_out_with_a_reason():
    public = {name for name in dir(RDBStorage) if not name.startswith("_") and callable(getattr(RDBStorage, name))}
    unknown = public - set(RETRIED) - set(NOT_RETRIED)
    assert not unknown, (f"optuna {optuna.__version__} has storage methods cnnkeras neither retries nor leaves out: "
                         f"{sorted(unknown)}; add them to ResilientRDBStorage (cnnkeras/studies/storage.py)")
    assert set(BaseStorage.__abstractmethods__) <= set(RETRIED)
    assert all(name in vars(ResilientRDBStorage) for name in RETRIED)


def _exercise(storage: BaseStorage) -> list:
    """The same operations a sweep makes, with what each returned."""
    seen = []
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "contract")
    seen.append(storage.get_study_id_from_name("contract") == study_id)
    storage.set_study_user_attr(study_id, "config", {"a": 1})
    storage.set_study_system_attr(study_id, "s", [1, 2])
    seen += [storage.get_study_name_from_id(study_id), storage.get_study_directions(study_id),
             storage.get_study_user_attrs(study_id), storage.get_study_system_attrs(study_id)]
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_param(trial_id, "lr", 0.01, FloatDistribution(1e-4, 1.0, log=True))
    storage.set_trial_user_attr(trial_id, "k", "v")
    storage.set_trial_system_attr(trial_id, "s", 3)
    storage.set_trial_intermediate_value(trial_id, 1, 0.5)
    seen += [storage.get_trial_param(trial_id, "lr"), storage.get_trial_params(trial_id),
             storage.get_trial_user_attrs(trial_id), storage.get_trial_system_attrs(trial_id),
             storage.get_trial_number_from_id(trial_id),
             storage.get_trial_id_from_study_id_trial_number(study_id, 0) == trial_id,
             storage.get_n_trials(study_id), storage.get_n_trials(study_id, TrialState.RUNNING)]
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.75])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial_id, "late", 1)
    best = storage.get_best_trial(study_id)
    trial = storage.get_trial(trial_id)
    seen += [best.number, best.values, trial.state, trial.params, trial.intermediate_values,
             [t.number for t in storage.get_all_trials(study_id, states=(TrialState.COMPLETE,))],
             [s.study_name for s in storage.get_all_studies()]]
    template = optuna.trial.create_trial(state=TrialState.WAITING, params={"lr": 0.1},
                                         distributions={"lr": FloatDistribution(1e-4, 1.0, log=True)})
    waiting = storage.create_new_trial(study_id, template_trial=template)
    seen.append(storage.get_trial(waiting).state)
    storage.delete_study(study_id)
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("contract")
    return seen


def test_the_resilient_storage_answers_as_optunas_own(tmp_path):
    theirs = _exercise(RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    ours = _exercise(ResilientRDBStorage(f"sqlite:///{tmp_path / 'ours.db'}"))
    assert ours == theirs


def test_the_resilient_storage_pickles_like_optunas_own(tmp_path):
    storage = ResilientRDBStorage(f"sqlite:///{tmp_path / 'ours.db'}", wait_s=7)
    study = optuna.create_study(storage=storage, study_name="pickled")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    copy = pickle.loads(pickle.dumps(storage))
    assert isinstance(copy, ResilientRDBStorage) and copy.wait_s == 7
    again = optuna.load_study(study_name="pickled", storage=copy)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    again.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)  # still writes after the round trip
    assert len(optuna.load_study(study_name="pickled", storage=storage).trials) == 3
