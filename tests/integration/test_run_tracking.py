"""A real run on digits leaves every metric, gap, parameter and artifact in a real MLflow store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import cnnkeras
from cnnkeras.runner import TrainingDiverged
from cnnkeras.tracking import internal_metrics, to_mlflow

PER_EPOCH = ("loss", "accuracy", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "gap_accuracy", "gap_loss",
             "learning_rate", "epoch_time_s")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny digits run shared by the tests of this module (about 10 s)."""
    folder = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = folder / "exp.yaml"
    config.write_text(f"""
name: tiny
seed: 7
data: {{source: digits}}
model:
  arch: sequential
  layers:
    - {{type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}}
    - {{type: max_pool, pool_size: 2}}
    - {{type: dense, units: 32, activation: relu}}
train:
  epochs: 3
  batch_size: 64
  optimizer: {{name: adam, learning_rate: 0.003}}
  checkpoint: {{monitor: val_loss}}
tracking: {{uri: "{uri}", experiment: tiny-exp}}
""")
    result = cnnkeras.run(config, progress=False)
    return result, MlflowClient(uri), uri, folder


def test_run_is_finished_with_params_and_tags(finished):
    result, client, _, _ = finished
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.batch_size"] == "64"
    assert params["train.optimizer.name"] == "adam" and float(params["train.optimizer.learning_rate"]) == 0.003
    assert params["seed"] == "7" and params["data.num_classes"] == "10"
    assert int(params["model.params"]) == result.model.count_params()
    assert run.data.tags["cnnkeras.arch"] == "sequential" and run.data.tags["cnnkeras.backend"] == "tensorflow"
    assert client.get_experiment(run.info.experiment_id).name == "tiny-exp"


def test_every_epoch_is_logged_with_the_gap(finished):
    result, client, _, _ = finished
    for key in PER_EPOCH:
        history = client.get_metric_history(result.run_id, to_mlflow(key))
        assert [m.step for m in history] == [1, 2, 3], key
    # the gap's training side is the inference-mode training sample (train_accuracy), not Keras' running accuracy
    acc = {m.step: m.value for m in client.get_metric_history(result.run_id, to_mlflow("train_accuracy"))}
    val = {m.step: m.value for m in client.get_metric_history(result.run_id, to_mlflow("val_accuracy"))}
    gap = {m.step: m.value for m in client.get_metric_history(result.run_id, to_mlflow("gap_accuracy"))}
    for step in (1, 2, 3):
        assert gap[step] == pytest.approx(acc[step] - val[step], abs=1e-6)
    losses = {k: {m.step: m.value for m in client.get_metric_history(result.run_id, to_mlflow(k))}
              for k in ("train_loss", "val_loss", "gap_loss")}
    assert losses["gap_loss"][3] == pytest.approx(losses["val_loss"][3] - losses["train_loss"][3], abs=1e-6)


def test_summary_metrics_best_epoch_and_test(finished):
    result, client, _, _ = finished
    metrics = internal_metrics(client.get_run(result.run_id).data.metrics)
    best = int(metrics["best_epoch"])
    val_losses = [m.value for m in sorted(client.get_metric_history(result.run_id, to_mlflow("val_loss")), key=lambda m: m.step)]
    assert best == int(np.argmin(val_losses)) + 1
    assert metrics["best_val_loss"] == pytest.approx(min(val_losses))
    assert 0.5 < metrics["test_accuracy"] <= 1.0 and math.isfinite(metrics["test_loss"])
    assert metrics["epochs_run"] == 3


def test_artifacts(finished, tmp_path):
    result, client, _, _ = finished
    names = set()
    for top in client.list_artifacts(result.run_id):
        names.add(top.path)
        if top.is_dir:
            names.update(a.path for a in client.list_artifacts(result.run_id, top.path))
    assert {"config.yaml", "environment.json", "model_summary.txt", "history.json", "model/model.keras",
            "plots/learning_curves.html", "checkpoints/best.keras"} <= names
    env = json.loads(open(client.download_artifacts(result.run_id, "environment.json", str(tmp_path))).read())
    assert env["backend"] == "tensorflow" and "keras" in env["packages"] and "mlflow" in env["packages"]
    assert "git" in env
    html = open(client.download_artifacts(result.run_id, "plots/learning_curves.html", str(tmp_path))).read()
    assert "plotly" in html and "val_" not in html[:0]


def test_model_loads_back_safely_and_predicts_the_same(finished, tmp_path):
    result, client, _, _ = finished
    path = client.download_artifacts(result.run_id, "model/model.keras", str(tmp_path))
    loaded = cnnkeras.load_model(path)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype="float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-6)


def test_reproduce_matches_exactly(finished):
    result, client, uri, _ = finished
    again = cnnkeras.reproduce(result.run_id, uri=uri, progress=False)
    assert again.matches, again.differences
    assert again.compared >= 10 and again.new_run_id != result.run_id
    assert client.get_run(again.new_run_id).data.tags["cnnkeras.reproduces"] == result.run_id
    tags = client.get_run(again.new_run_id).data.tags  # nested under the run it re-ran, tagged as a re-run
    assert tags["mlflow.parentRunId"] == result.run_id and tags["cnnkeras.kind"] == "reproduce"


def test_diverging_run_is_failed_with_a_reason(write_config, tracking_uri):
    import keras
    import numpy as np

    from ..conftest import TINY_MODEL

    class PoisonWeights(keras.callbacks.Callback):
        """NaN weights at the start of epoch 2: a divergence on any CPU (no huge learning rate)."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for weight in self.model.trainable_weights:
                    weight.assign(np.full(weight.shape, np.nan, dtype="float32"))

    path = write_config("""
        name: diverge
        data: {source: digits, subset: 300}
        train: {epochs: 3, batch_size: 32, optimizer: {name: sgd, learning_rate: 0.01}}
        """, TINY_MODEL)
    with pytest.raises(TrainingDiverged) as info:
        cnnkeras.run(path, progress=False, callbacks=[PoisonWeights()])
    run = MlflowClient(tracking_uri).get_run(info.value.run_id)
    assert run.info.status == "FAILED"
    assert "non-finite loss" in run.data.tags["cnnkeras.failure_reason"]
    assert "at epoch 2" in run.data.tags["cnnkeras.failure_reason"]
    assert f"MLflow run {info.value.run_id}, closed FAILED" in str(info.value)  # the CLI prints this line
    with pytest.raises(cnnkeras.CnnkerasError, match="is FAILED, not FINISHED"):
        cnnkeras.reproduce(info.value.run_id, progress=False)  # refused at once, not retrained


def test_bad_data_fails_before_any_run_is_created(write_config, tracking_uri):
    path = write_config("name: small\ndata: {source: digits}\nmodel: {arch: lenet5}\n")
    with pytest.raises(cnnkeras.ModelError):
        cnnkeras.run(path, progress=False)
    client = MlflowClient(tracking_uri)
    assert client.get_experiment_by_name("small") is None


def test_runs_frame_and_curves_frame_read_the_store(finished, tmp_path):
    result, _, uri, _ = finished
    frame = cnnkeras.runs_frame("tiny-exp", uri=uri)
    row = frame.set_index("run_id").loc[result.run_id]
    assert row["param.train.batch_size"] == 64 and row["status"] == "FINISHED"
    assert row["best_epoch"] == result.best_epoch and row["epochs"] == 3
    assert row["final_gap_accuracy"] == pytest.approx(result.summary["final_gap_accuracy"])
    assert row["test_accuracy"] == pytest.approx(result.summary["test_accuracy"])
    curves = cnnkeras.curves_frame("tiny-exp", uri=uri)
    mine = curves[curves.run_id == result.run_id]
    assert sorted(mine[mine.metric == "val_loss"].epoch) == [1, 2, 3]
    from cnnkeras.analysis.frames import export

    export(frame, tmp_path / "runs.parquet")
    export(curves, tmp_path / "curves.csv")
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == len(frame)
    assert len(pd.read_csv(tmp_path / "curves.csv")) == len(curves)


def test_runs_frame_reports_every_summary_value_as_the_run_logged_it(write_config, tracking_uri):
    """The runs frame (behind reports, claims, importances) never recomputes a logged value
    differently: here ``train.monitor: val_accuracy`` puts the best epoch at 4, where a
    recomputation by ``val_loss`` would say 2."""
    from cnnkeras.measures import best_epoch_of, summarize
    from cnnkeras.tracking import Tracker

    from ..conftest import TINY_MODEL

    history = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [0.9, 0.5, 0.6, 0.7],
               "accuracy": [0.5, 0.7, 0.8, 0.9], "val_accuracy": [0.6, 0.7, 0.72, 0.75]}
    best = best_epoch_of(history, "val_accuracy")
    assert best == 4 and best_epoch_of(history, "val_loss") == 2
    tracker = Tracker(uri=tracking_uri, experiment="monitored", run_name="by-accuracy")
    tracker.log_params({"train.monitor": "val_accuracy"})
    for epoch in range(4):
        tracker.log_metrics({key: values[epoch] for key, values in history.items()}, step=epoch + 1)
    summary = summarize(history, best, {"test_accuracy": 0.74})
    tracker.log_metrics(summary)
    tracker.end("FINISHED")

    row = cnnkeras.runs_frame("monitored", uri=tracking_uri).iloc[0]
    assert row["best_epoch"] == 4 and row["best_val_accuracy"] == pytest.approx(0.75)
    assert row["epochs_after_best"] == 0 and row["test_minus_val_accuracy"] == pytest.approx(0.74 - 0.75)
    for key, value in summary.items():
        if key in row.index:
            assert row[key] == pytest.approx(value), key

    path = write_config("""
        name: monitored-real
        data: {source: digits, subset: 400}
        train: {epochs: 4, batch_size: 32, monitor: val_accuracy, optimizer: {name: adam, learning_rate: 0.003}}
        """, TINY_MODEL)
    result = cnnkeras.run(path, progress=False)
    row = cnnkeras.runs_frame("monitored-real", uri=tracking_uri).iloc[0]
    logged = internal_metrics(MlflowClient(tracking_uri).get_run(result.run_id).data.metrics)
    shared = [key for key in logged if key in row.index]
    assert {"best_epoch", "best_val_accuracy", "final_gap_accuracy", "test_accuracy"} <= set(shared)
    for key in shared:
        assert row[key] == pytest.approx(logged[key]), key


def test_the_model_is_logged_before_the_records_and_a_write_failure_is_one_clear_error(
        tiny_config, tracking_uri, monkeypatch):
    import errno

    import cnnkeras.runner

    def disk_full(*args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(cnnkeras.runner, "_write_records", disk_full)
    with pytest.raises(cnnkeras.CnnkerasError, match=r"could not write the run's records \(File too large\); "
                                                     r"the trained model was logged first"):
        cnnkeras.run(tiny_config, ["train.epochs=1"], progress=False)
    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.keras"]


def test_runs_of_one_seed_get_names_of_their_own(tiny_config, tracking_uri):
    run_ids = [cnnkeras.run(tiny_config, ["train.epochs=1"], progress=False).run_id for _ in range(2)]
    client = MlflowClient(tracking_uri)
    run_names = [client.get_run(run_id).info.run_name for run_id in run_ids]
    assert len(set(run_names)) == 2 and all(name.startswith("tiny-") for name in run_names)


def test_read_only_commands_never_create_an_empty_store(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cnnkeras.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for command in (["runs", "some-experiment"], ["report", "some-experiment"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "no MLflow store at" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_runs_and_report_outputs_that_cannot_be_written_are_one_line(finished, tmp_path):
    from typer.testing import CliRunner

    from cnnkeras.cli import app

    _, _, uri, _ = finished
    for command, message in ((["runs", "tiny-exp", "--uri", uri, "--out", str(tmp_path / "x.txt")],
                              "--out takes a .csv or .parquet file"),
                             (["report", "tiny-exp", "--uri", uri, "--out", "/proc/no/such/dir/r.html"],
                              "cannot write the report to /proc/no/such/dir/r.html")):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_background_tracking_keeps_order_and_epoch_times_and_a_failed_call_fails_the_run(tracking_uri, tmp_path):
    """A run's tracking is done by a worker thread (BackgroundTracker): calls happen in order,
    metrics keep the time they were logged at, and a call that failed does not vanish: the run
    is closed FAILED with the reason and end() raises it."""
    import time

    from cnnkeras.errors import TrackingError
    from cnnkeras.tracking import BackgroundTracker

    tracker = BackgroundTracker(uri=tracking_uri, experiment="background")
    before = int(time.time() * 1000)
    for epoch in (1, 2, 3):
        tracker.on_epoch(epoch, {"loss": 1.0 / epoch})
    tracker.log_params({"a": 1})
    tracker.end("FINISHED")
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(tracker.run_id, to_mlflow("loss"))
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert all(before <= m.timestamp <= before + 5000 for m in history)
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert client.get_run(tracker.run_id).data.params == {"a": "1"}

    failing = BackgroundTracker(uri=tracking_uri, experiment="background")
    failing.log_artifact(tmp_path / "no-such-file.txt")
    failing.log_metrics({"after": 1.0})  # skipped: nothing is written after a failed call but the end
    with pytest.raises(TrackingError, match="tracking failed"):
        failing.end("FINISHED")
    run = client.get_run(failing.run_id)
    assert run.info.status == "FAILED"
    assert "no-such-file.txt" in run.data.tags["cnnkeras.failure_reason"]
    assert "after" not in internal_metrics(run.data.metrics)


def test_a_store_that_cannot_open_the_run_stops_training_within_an_epoch(write_config, tmp_path):
    """The URI is checked at once; a store that then cannot create the run (here a file that is
    not a database) stops training at the next tracking call, in one line, instead of training
    to the end untracked."""
    from ..conftest import TINY_MODEL

    store = tmp_path / "broken.db"
    store.write_bytes(b"this is not an SQLite database" * 100)
    path = write_config(f"""
        name: broken
        data: {{source: digits, validation_split: 0.2}}
        train: {{epochs: 50, batch_size: 64}}
        tracking: {{uri: "sqlite:///{store}"}}
        """, TINY_MODEL)
    epochs = []

    class Count:
        def on_epoch(self, epoch, record):
            epochs.append(epoch)

    with pytest.raises(cnnkeras.CnnkerasError, match="could not open the MLflow run in sqlite:///") as caught:
        cnnkeras.run(path, progress=False, listeners=[Count()])
    assert "\n" not in str(caught.value)
    assert len(epochs) <= 3
