"""The pieces under the served stack: values valid for every MLflow store, masked secrets,
per-process sampler seeds, the journal lock and which storage errors are worth waiting for."""

from __future__ import annotations

import pytest

from cnnkeras.errors import CnnkerasError
from cnnkeras.studies.storage import JournalLock, _is_transient, sampler_seed
from cnnkeras.tracking.values import MAX_PARAM_LENGTH, metric_values, param_values, redact, redact_data, tag_values


@pytest.mark.parametrize("text, shown", [
    ("postgresql+psycopg://team:s3cret@db:5432/optuna", "postgresql+psycopg://team:***@db:5432/optuna"),
    ("http://alice:p%40ss@mlflow:5001/mlflow", "http://alice:***@mlflow:5001/mlflow"),
    ("storage postgresql://u:pw@h/db failed; retry http://v:x@h2", "storage postgresql://u:***@h/db failed; "
                                                                     "retry http://v:***@h2"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/optuna", "postgresql+psycopg://postgres@127.0.0.1:5432/optuna"),
    ("sqlite:////tmp/a:b/mlflow.db", "sqlite:////tmp/a:b/mlflow.db"),
    (".cnnkeras/study.journal", ".cnnkeras/study.journal"),
])
def test_redact_masks_only_passwords(text, shown):
    assert redact(text) == shown


def test_redact_data_walks_configs():
    data = {"search": {"storage": "postgresql://u:pw@h/db", "n_trials": 3}, "tags": ["http://a:b@c"]}
    assert redact_data(data) == {"search": {"storage": "postgresql://u:***@h/db", "n_trials": 3},
                                 "tags": ["http://a:***@c"]}


def test_values_are_strings_within_limits_and_metrics_finite():
    assert tag_values({"cnnkeras.trial_number": 3, "flag": True, "none": None}) == {
        "cnnkeras.trial_number": "3", "flag": "True", "none": ""}
    long = param_values({"p": "x" * (MAX_PARAM_LENGTH + 10), "q": 0.001})
    assert len(long["p"]) == MAX_PARAM_LENGTH and long["p"].endswith("...") and long["q"] == "0.001"
    assert param_values({"search.storage": "postgresql://u:pw@h/db"}) == {"search.storage": "postgresql://u:***@h/db"}
    assert metric_values({"a": 1, "b": float("nan"), "c": float("inf"), "d": None, "e": "x"}) == {"a": 1.0}


def test_each_sweep_process_gets_its_own_reproducible_seed():
    assert sampler_seed(42, 0) == 42  # the first process: exactly the config's seed, as before
    seeds = [sampler_seed(42, worker) for worker in range(20)]
    assert len(set(seeds)) == 20 and seeds == [sampler_seed(42, worker) for worker in range(20)]
    assert sampler_seed(43, 1) != sampler_seed(42, 1)


def test_a_journal_takes_one_sweep_process_at_a_time(tmp_path):
    journal = tmp_path / "s.journal"
    first = JournalLock(journal).acquire()
    with pytest.raises(CnnkerasError, match=r"in use by a running sweep \(pid \d+\).*PostgreSQL"):
        JournalLock(journal).acquire()
    first.release()
    with JournalLock(journal):
        pass


def test_connection_errors_are_waited_for_and_others_are_not():
    import optuna
    import sqlalchemy.exc

    broken = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert _is_transient(broken)
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = broken
    assert _is_transient(wrapped)
    assert not _is_transient(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not _is_transient(ValueError("bad value"))


def test_a_study_name_is_looked_up_in_one_place_and_shown_masked(tmp_path, monkeypatch):
    """`report NAME` and `best NAME` find a study the same way, $CNNKERAS_STORAGE included."""
    import optuna

    from cnnkeras.analysis.source import _from_study, resolve
    from cnnkeras.studies.study import named_study_storage

    monkeypatch.delenv("CNNKERAS_STORAGE", raising=False)
    assert named_study_storage("s") == ".cnnkeras/s.journal"
    monkeypatch.setenv("CNNKERAS_STORAGE", str(tmp_path / "shared.journal"))
    assert named_study_storage("s") == str(tmp_path / "shared.journal")
    assert named_study_storage("s", "postgresql://x/y") == "postgresql://x/y"
    shared = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "shared.journal")))
    optuna.create_study(study_name="s", storage=shared)  # not made by cnnkeras: resolve must find it to say so
    with pytest.raises(CnnkerasError, match=r"study s in .*shared.journal was not made by cnnkeras"):
        resolve("s")

    study = optuna.create_study()
    study.set_user_attr("config", {"name": "s", "search": {"parameters": {"train.l2": {"type": "float", "low": 0.0,
                                                                                        "high": 0.1}}}})
    study.set_user_attr("mlflow_parent_run_id", "abc")
    source = _from_study(study, "postgresql+psycopg://team:secret-pw@db/optuna", None, None)
    assert source.storage == "postgresql+psycopg://team:***@db/optuna"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SECRET = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@/?#&%'\";,:= "),
                 min_size=3, max_size=30).map(lambda text: "Zq7" + text)  # a prefix no form's own text holds
FORMS = [
    "postgresql+psycopg://team:{pw}@db.example:5432/optuna",
    "postgresql+psycopg://team@db.example:5432/optuna?password={pw}",
    "postgresql+psycopg://team@db.example/optuna?sslmode=require&password={pw}&application_name=cnnkeras",
    "host=db.example port=5432 user=team password={pw} dbname=optuna",
    "http://alice:{pw}@mlflow.example:5001",
    "PGPASSWORD={pw} cnnkeras sweep exp.yaml",
    "storage 'postgresql://u:{pw}@db.example/x' failed",
]


@settings(max_examples=300, deadline=None)
@given(secret=SECRET, form=st.sampled_from(FORMS))
def test_every_form_of_password_is_masked_wherever_it_appears(secret, form):
    """Issue 25: ``?password=`` in the storage URL was printed on the console and stored in a tag."""
    text = form.format(pw=secret)
    shown = redact(text)
    assert secret not in shown and "***" in shown
    assert "db.example" in shown or "mlflow.example" in shown or "cnnkeras sweep" in shown  # the rest stays
