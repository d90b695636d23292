"""Sweeps on digits: nested MLflow runs, pruning, failing trials, SIGKILL + resume, workers, best."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

import cnnkeras
from cnnkeras.studies.study import load_study
from cnnkeras.tracking import internal_metrics, to_mlflow

from ..conftest import SWEEP_MODEL as MODEL

pytestmark = pytest.mark.slow  # sweeps of several trials, processes killed and resumed


def sweep_file(tmp_path, search: str, *, epochs: int = 3, name: str = "sw", optimizer: str = "adam") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        seed: 5
        data: {{source: digits, subset: 500}}
        train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: {optimizer}}}}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}"}}
        """) + MODEL + textwrap.dedent(search))
    return str(path)


def runs(tmp_path, experiment="sw"):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    all_runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in all_runs if r.data.tags.get("cnnkeras.kind") == "sweep"]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sweep")
    path = sweep_file(tmp_path, """
        search:
          n_trials: 3
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
            train.batch_size: {type: categorical, choices: [16, 64]}
        """)
    return tmp_path, path, cnnkeras.sweep(path, progress=False)


def test_one_parent_and_n_children_with_params_states_and_metrics(finished_sweep):
    tmp_path, path, result = finished_sweep
    client, parents, children = runs(tmp_path)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.run_id == result.parent_run_id and parent.info.status == "FINISHED"
    study = load_study(cnnkeras.load_config(path))
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    by_number = {int(r.data.tags["cnnkeras.trial_number"]): r for r in children}
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["cnnkeras.trial_state"] == "COMPLETE"
        assert run.data.params["train.batch_size"] == str(trial.params["train.batch_size"])
        assert float(run.data.params["train.optimizer.learning_rate"]) == pytest.approx(
            trial.params["train.optimizer.learning_rate"])
        for key in ("val_accuracy", "gap_accuracy", "loss"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, to_mlflow(key))] == [1, 2, 3]
        assert trial.values[0] == pytest.approx(internal_metrics(run.data.metrics)["best_val_accuracy"])
    assert "best_val_accuracy" in internal_metrics(parent.data.metrics) and internal_metrics(parent.data.metrics)["trials_complete"] == 3
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/optuna.html"}
    page = open(client.download_artifacts(parent.info.run_id, "plots/optuna.html", str(tmp_path))).read()
    assert 'id="history"' in page and 'id="parallel_coordinate"' in page
    assert set(result.importances) >= {"best_val_accuracy", "final_gap_accuracy"}


@pytest.mark.slow
def test_a_sweep_and_best_without_validation_data(tmp_path):
    """Issue 25: ``validation_split: 0`` wherever it is used, ``best`` included: a sweep on the test split's
    accuracy runs, and ``best`` retrains with nothing to fold in (and says so)."""
    path = tmp_path / "nosplit.yaml"
    path.write_text(textwrap.dedent(f"""
        name: nosplit
        seed: 5
        data: {{source: digits, subset: 400, validation_split: 0}}
        train: {{epochs: 1, batch_size: 32}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}"}}
        search:
          n_trials: 2
          objectives: [{{metric: test_accuracy, direction: maximize}}]
          pruner: {{name: none}}
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
        """) + MODEL)
    result = cnnkeras.sweep(cnnkeras.load_config(path), progress=False)
    assert result.counts() == {"COMPLETE": 2}
    retrained = cnnkeras.best(str(path), progress=False)
    assert retrained.folded == 0 and retrained.trial in {0, 1}
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(retrained.run_id)
    assert "test_accuracy" in internal_metrics(run.data.metrics) and "val_loss" not in internal_metrics(run.data.metrics)


def test_best_retrains_on_the_whole_training_split_and_registers(finished_sweep):
    tmp_path, path, result = finished_sweep
    retrained = cnnkeras.best(path, progress=False)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(retrained.run_id)
    assert run.data.params["data.validation_split"] == "0.0" and "val_loss" not in internal_metrics(run.data.metrics)
    assert run.data.tags["cnnkeras.best_of_study"] == "sw" and "test_accuracy" in internal_metrics(run.data.metrics)
    versions = client.search_model_versions("name='sw'")
    assert [v.run_id for v in versions] == [retrained.run_id]
    # it says which trial it retrained, and sits under that trial's run, not among the sweep's trials
    best_trial = load_study(cnnkeras.load_config(path)).best_trial
    folded = cnnkeras.load_config(path).data.validation_split
    assert retrained.trial == best_trial.number and retrained.study == "sw" and retrained.folded == folded > 0
    assert run.data.tags["mlflow.parentRunId"] == best_trial.user_attrs["mlflow_run_id"] == retrained.trial_run_id
    assert run.data.tags["cnnkeras.kind"] == "best" and run.data.tags["cnnkeras.best_trial"] == str(best_trial.number)
    assert run.data.tags["cnnkeras.retrained_run_id"] == retrained.trial_run_id
    assert run.data.tags["cnnkeras.validation_folded"] == f"{folded:g}"
    assert run.info.run_name == f"best-sw (trial {best_trial.number}, train+val)"
    assert f"trial {best_trial.number}" in run.data.tags["mlflow.note.content"]
    assert "folded into training" in run.data.tags["mlflow.note.content"]


def test_pruning_stops_clearly_bad_trials_early(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 6
          sampler: {name: random, seed: 6}  # draws good, good, bad, good, bad, bad: the median is good
          pruner: {name: median, warmup_epochs: 1, startup_trials: 1}
          parameters:
            train.optimizer.learning_rate: {type: categorical, choices: [0.003, 1.0e-6]}
        """, epochs=6)
    result = cnnkeras.sweep(path, progress=False)
    client, _, children = runs(tmp_path)
    pruned = [r for r in children if r.data.tags["cnnkeras.trial_state"] == "PRUNED"]
    complete = [r for r in children if r.data.tags["cnnkeras.trial_state"] == "COMPLETE"]
    assert pruned and complete and result.counts().get("PRUNED") == len(pruned)
    for run in pruned:
        epochs = len(client.get_metric_history(run.info.run_id, to_mlflow("val_accuracy")))
        assert epochs < 6 and int(run.data.tags["cnnkeras.pruned_at_epoch"]) == epochs
        assert run.data.params["train.optimizer.learning_rate"] == "1e-06"
        number = run.data.tags["cnnkeras.trial_number"]
        assert run.info.run_name == f"trial-{number} (pruned at epoch {epochs})"  # MLflow says FINISHED: the name says
    assert all(r.info.run_name == f"trial-{r.data.tags['cnnkeras.trial_number']}" for r in complete)
    assert all(len(client.get_metric_history(r.info.run_id, to_mlflow("val_accuracy"))) == 6 for r in complete)


def test_a_diverging_trial_fails_cleanly_and_the_rest_finish(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 3
          sampler: {name: grid}
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: categorical, choices: [1.0e+30, 0.01, 0.05]}
        """, optimizer="sgd")
    result = cnnkeras.sweep(path, progress=False)
    assert result.counts() == {"FAIL": 1, "COMPLETE": 2}
    failed = [t for t in result.trials if t["state"] == "FAIL"][0]
    assert failed["params"]["train.optimizer.learning_rate"] == 1e30
    assert "non-finite loss" in failed["user_attrs"]["reason"]
    _, _, children = runs(tmp_path)
    states = sorted((r.info.status, r.data.tags["cnnkeras.trial_state"]) for r in children)
    assert states == [("FAILED", "FAIL"), ("FINISHED", "COMPLETE"), ("FINISHED", "COMPLETE")]
    run = [r for r in children if r.info.status == "FAILED"][0]
    assert "non-finite loss" in run.data.tags["cnnkeras.failure_reason"]
    assert run.info.run_name == f"trial-{run.data.tags['cnnkeras.trial_number']} (failed)"


def _start_sweep(path, *overrides):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "sweep", path, *overrides, "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_running_trial(path, process, timeout=180):
    config = cnnkeras.load_config(path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            study = optuna.load_study(study_name="sw", storage=load_study(config)._storage)
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
            if running and running[0].intermediate_values and running[0].number >= 1:
                return study
        except KeyError:
            pass
        time.sleep(0.3)
    raise AssertionError("no trial started in time")


SLOW_SEARCH = """
    search:
      n_trials: 3
      pruner: {name: median, startup_trials: 5}
      parameters:
        train.batch_size: {type: categorical, choices: [16, 32]}
    """


def test_sigkill_mid_trial_then_resume_ends_with_exactly_the_total(tmp_path):
    path = sweep_file(tmp_path, SLOW_SEARCH, epochs=8)
    process = _start_sweep(path)
    study = _wait_for_running_trial(path, process)
    parent_before = study.user_attrs["mlflow_parent_run_id"]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    result = cnnkeras.sweep(path, progress=False)
    assert result.parent_run_id == parent_before
    counted = [t for t in result.trials if not t["stale"]]
    stale = [t for t in result.trials if t["stale"]]
    assert len(counted) == 3 and all(t["state"] in ("COMPLETE", "PRUNED") for t in counted)
    assert len(stale) == 1 and stale[0]["state"] == "FAIL"
    numbers = [t["number"] for t in result.trials]
    assert len(numbers) == len(set(numbers))
    assert any(t["user_attrs"].get("retry_of") == stale[0]["number"] for t in counted)
    client, parents, children = runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    died = [r for r in children if r.info.status == "FAILED"]
    assert len(died) == 1 and "sweep process died" in died[0].data.tags["cnnkeras.failure_reason"]
    assert len(children) == 4


def test_ctrl_c_fails_the_trial_kills_its_run_and_says_how_to_resume(tmp_path):
    path = sweep_file(tmp_path, SLOW_SEARCH, epochs=8)
    process = _start_sweep(path, "train.shuffle=true")
    _wait_for_running_trial(path, process)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Resume with the same command" in output
    assert f"(cnnkeras sweep {path} train.shuffle=true)" in " ".join(output.split())  # overrides kept
    _, parents, children = runs(tmp_path)
    assert parents[0].info.status == "KILLED"
    assert "KILLED" in {r.info.status for r in children}
    study = load_study(cnnkeras.load_config(path))
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["stale"] is True
    assert "interrupted (Ctrl-C)" in interrupted[0].user_attrs["reason"]

    resumed = cnnkeras.sweep(path, ["train.shuffle=true"], progress=False)  # the interrupted trial does not count
    counted = [t for t in resumed.trials if not t["stale"]]
    assert len(counted) == 3 and all(t["state"] in ("COMPLETE", "PRUNED") for t in counted)
    retry = [t for t in counted if t["user_attrs"].get("retry_of") == interrupted[0].number]
    assert len(retry) == 1 and retry[0]["params"] == interrupted[0].params


def test_parallel_jobs_run_each_trial_in_its_own_process(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 2
          pruner: {name: none}
          parameters:
            train.batch_size: {type: categorical, choices: [16, 32]}
        """, epochs=2)
    result = cnnkeras.sweep(path, jobs=2, progress=False)
    assert result.counts() == {"COMPLETE": 2}
    _, parents, children = runs(tmp_path)
    assert len(children) == 2 and {r.info.status for r in children} == {"FINISHED"}
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)


def test_two_objectives_report_the_pareto_front(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 3
          sampler: {name: nsga2}
          objectives:
            - {metric: best_val_accuracy, direction: maximize}
            - {metric: final_gap_accuracy, direction: minimize}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
        """, epochs=2)
    result = cnnkeras.sweep(path, progress=False)
    assert result.directions == ["maximize", "minimize"] and result.counts() == {"COMPLETE": 3}
    front = {b["number"] for b in result.best}
    values = {t["number"]: t["values"] for t in result.trials}
    for number in front:  # nothing on the front is dominated by another trial
        acc, gap = values[number]
        assert not any(a >= acc and g <= gap and (a, g) != (acc, gap) for a, g in values.values())
    client, parents, _ = runs(tmp_path)
    page = open(client.download_artifacts(parents[0].info.run_id, "plots/optuna.html", str(tmp_path))).read()
    assert 'id="pareto_front"' in page


def test_a_second_sweep_on_a_journal_in_use_is_refused_and_the_first_goes_on(tmp_path):
    path = sweep_file(tmp_path, SLOW_SEARCH.replace("n_trials: 3", "n_trials: 5"), epochs=8)
    first = _start_sweep(path)
    _wait_for_running_trial(path, first)
    second = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q"], capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "is in use by a running sweep (pid" in second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    study = load_study(cnnkeras.load_config(path))
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 5


def test_a_resumed_sweep_draws_new_parameters_instead_of_repeating(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 2
          sampler: {name: random}
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
        """, epochs=1)
    first = cnnkeras.sweep(path, progress=False)
    resumed = cnnkeras.sweep(path, n_trials=4, progress=False)
    params = [t["params"]["train.optimizer.learning_rate"] for t in resumed.trials]
    assert len(params) == 4 and len(set(params)) == 4  # the second process did not start the sampler over
    assert [t["user_attrs"]["worker"] for t in resumed.trials] == [0, 0, 1, 1]
    assert first.trials[0]["user_attrs"]["sampler_seed"] == 5  # the first process uses the config's seed


def test_a_trial_finished_in_mlflow_but_left_running_in_optuna_is_adopted_not_rerun(tmp_path):
    """The process died between MLflow's FINISHED and Optuna's tell: the retry takes the logged result."""
    from cnnkeras.tracking import Tracker

    path = sweep_file(tmp_path, """
        search:
          n_trials: 2
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
        """, epochs=1)
    config = cnnkeras.load_config(path)
    study = load_study(config)
    orphan = study.ask({"train.optimizer.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)})
    run = Tracker(uri=config.tracking.uri, experiment="sw", run_name="trial-0",
                  tags={"cnnkeras.trial_number": orphan.number, "cnnkeras.trial_state": "COMPLETE"})
    run.log_metrics({"best_val_accuracy": 0.625, "final_gap_accuracy": 0.01})
    run.end("FINISHED")
    orphan.set_user_attr("mlflow_run_id", run.run_id)  # as run_trial does as soon as the run exists

    result = cnnkeras.sweep(path, progress=False)
    by_number = {t["number"]: t for t in result.trials}
    assert by_number[orphan.number]["state"] == "FAIL" and by_number[orphan.number]["stale"]
    adopted = [t for t in result.trials if t["user_attrs"].get("retry_of") == orphan.number]
    assert len(adopted) == 1 and adopted[0]["state"] == "COMPLETE" and adopted[0]["values"] == [0.625]
    assert adopted[0]["user_attrs"]["mlflow_run_id"] == run.run_id
    assert adopted[0]["params"] == orphan.params
    assert len([t for t in result.trials if not t["stale"]]) == 2
    client = MlflowClient(config.tracking.uri)
    assert client.get_run(run.run_id).info.status == "FINISHED"  # not closed FAILED: its result was kept
    trained = [r for r in runs(tmp_path)[2] if r.info.run_id != run.run_id]
    assert len(trained) == 1  # only the one new trial was trained


def test_a_sweep_whose_every_trial_failed_exits_1(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 2
          pruner: {name: none}
          parameters:
            data.subset: {type: categorical, choices: [3]}   # 3 images cannot be split into 10 classes
        """, epochs=1)
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path], capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "every trial of the study failed" in output and output.count(" FAIL ") >= 2
    assert "Traceback" not in output

    quiet = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q", "--trials", "3"],
                           capture_output=True, text=True, timeout=300)
    lines = [line for line in (quiet.stdout + quiet.stderr).splitlines() if line.strip()]
    assert quiet.returncode == 1, lines
    assert "Traceback" not in quiet.stderr
    failed = [line for line in lines if line.startswith("trial ")]
    assert len(failed) == 1 and " FAIL " in failed[0], lines  # -q: only the new trial's failure, in one line


def test_a_torn_journal_is_cut_back_with_a_backup_and_a_corrupt_one_refused_in_one_line(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 1
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
        """, epochs=1)
    cnnkeras.sweep(path, progress=False)
    journal = tmp_path / ".cnnkeras" / "sw.journal"
    records = journal.read_bytes().count(b"\n")
    journal.write_bytes(journal.read_bytes() + b'{"op_code": 5, "worker_id": "x", "trial_id"')  # a crash mid-write

    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "--trials", "2", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ended in a partial record (a crash while writing): kept its {records} complete records" in done.stderr
    backups = list(journal.parent.glob("sw.journal.torn-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes().endswith(b'"trial_id"')
    study = load_study(cnnkeras.load_config(path))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]

    lines = journal.read_bytes().split(b"\n")
    lines[2] = b"not a record"
    journal.write_bytes(b"\n".join(lines))
    for command in (["sweep", path], ["best", path, "--no-register"], ["runs", path]):
        done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", *command], capture_output=True, text=True,
                              timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 2 and f"{journal} is corrupt at line 3" in output, (command, output[-1500:])
        assert "Traceback" not in output
    assert journal.read_bytes().split(b"\n")[2] == b"not a record"  # left as it was


def _in_a_terminal(args, *, columns=80, timeout=600):
    """Run the CLI with a pseudo-terminal as its stdout and stderr (``COLUMNS`` wide); its output as text."""
    import pty
    import re
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                               env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(master)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    raw = b"".join(chunks).decode(errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # what was drawn, escape sequences left out


LIVE = """
    search:
      n_trials: 3
      pruner: {name: none}
      parameters:
        train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
        train.batch_size: {type: categorical, choices: [16, 64]}
    """


@pytest.mark.parametrize("how", [["--jobs", "2"], ["search.cohort=2", "search.cohort_probe=false"]],
                         ids=["worker-processes", "cohorts"])
def test_a_sweep_on_a_terminal_draws_its_running_trials_epoch_by_epoch(tmp_path, how):
    path = sweep_file(tmp_path, LIVE)
    shown = _in_a_terminal(["sweep", path, *how])
    frames = [line for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    header = [line for line in frames if line.startswith("sw: ") and " done (" in line]
    assert header and "ETA" in header[-1] and "3/3 done (3 complete, 0 pruned, 0 failed)" in header[-1]
    rows = [line.split() for line in frames if re.fullmatch(r"\s*\d+\s+\d/3\s+\S+\s+\S+\s+lr=.*", line)]
    seen = {(row[0], row[1]) for row in rows}  # (trial, epoch of epochs) as the panel drew them
    assert {("0", "1/3"), ("0", "2/3"), ("0", "3/3")} <= seen or {("1", "1/3"), ("1", "2/3")} <= seen, frames[-40:]
    assert len({row[0] for row in rows}) >= 2  # every trial's epochs reach the panel, whichever process trains it
    lines = [line for line in frames if re.match(r"trial +\d+ (COMPLETE|PRUNED|FAIL)", line)]
    assert len(lines) == 3 and all("best_val_accuracy=" in line and " gap=" in line for line in lines)
    assert all(len(line) <= 80 for line in frames), [line for line in frames if len(line) > 80]


def test_a_quiet_sweep_prints_one_line_per_trial_with_its_gap(tmp_path):
    path = sweep_file(tmp_path, LIVE)
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q", "--jobs", "2"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3 and all(re.search(r"COMPLETE best_val_accuracy=0\.\d{4} gap=-?0\.\d{4}  lr=", line)
                                   for line in lines), done.stderr
    assert all(len(line) <= 80 for line in (done.stdout + done.stderr).splitlines())
    assert " ETA " not in done.stderr and "Warning" not in done.stderr
