"""Every ending is clean (issue 24): nothing a user or the operating system does leaves a run RUNNING.

Whole ``cnnkeras`` processes, real signals: SIGTERM and SIGHUP handled as Ctrl-C is (the run
KILLED with its epochs, exit 143 or 129, one line; a second signal forces), Ctrl-C sent at many
moments of start-up, a sweep stopped by SIGTERM and resumed, a worker process whose sweep died,
the retry limit and a streak of failed trials, a failed run's traceback, and what ``import
cnnkeras`` leaves untouched.
"""

from __future__ import annotations

import json
import os
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
from cnnkeras.tracking import to_mlflow

from ..conftest import SWEEP_MODEL, TINY_MODEL

pytestmark = pytest.mark.slow  # whole processes, signals, resumed sweeps


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(*args: str, cwd) -> subprocess.Popen:
    # SIGINT at its default in the child (a backgrounded shell would otherwise hand it down ignored).
    return subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_file(tmp_path, *, epochs: int = 40) -> str:
    path = tmp_path / "long.yaml"
    path.write_text(textwrap.dedent(f"""
        name: long
        seed: 7
        data: {{source: digits, validation_split: 0.2}}
        train: {{epochs: {epochs}, batch_size: 64}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}", log_plots: false}}
        """) + TINY_MODEL)
    return str(path)


def runs(tmp_path, experiment: str):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client, ([] if found is None else client.search_runs([found.experiment_id], max_results=1000))


def _wait_for_epoch(tmp_path, experiment: str, process, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            client, found = runs(tmp_path, experiment)
            for run in found:
                if client.get_metric_history(run.info.run_id, to_mlflow("val_accuracy")):
                    return run.info.run_id
        except Exception:  # the store is being created
            pass
        time.sleep(0.3)
    raise AssertionError("no epoch was logged in time")


@pytest.mark.parametrize("signum,code,name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_sigterm_and_sighup_end_a_run_killed_with_its_epochs_and_one_line(tmp_path, signum, code, name):
    path = run_file(tmp_path)
    process = _start("run", path, cwd=tmp_path)
    run_id = _wait_for_epoch(tmp_path, "long", process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == code, output
    assert f"interrupted: stopped by {name}" in output and "Traceback" not in output
    client, _ = runs(tmp_path, "long")
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["cnnkeras.failure_reason"] == f"stopped by {name}"
    epochs = len(client.get_metric_history(run_id, to_mlflow("val_accuracy")))
    assert 1 <= epochs < 40  # the finished epochs, and only those


def test_a_second_signal_stops_at_once_and_still_closes_the_run(tmp_path):
    path = run_file(tmp_path)
    process = _start("run", path, cwd=tmp_path)
    run_id = _wait_for_epoch(tmp_path, "long", process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 143, output
    client, _ = runs(tmp_path, "long")
    assert client.get_run(run_id).info.status == "KILLED"


def test_ctrl_c_at_any_moment_of_start_up_is_never_lost(tmp_path):
    """Issue 24: one Ctrl-C in nine was swallowed during start-up and the run trained to the end.

    Sent at offsets from the interpreter's start to the first epochs: the command always stops
    (130, or killed by SIGINT before its handler exists, when nothing has been created), and no
    run is ever left RUNNING or FINISHED.
    """
    path = run_file(tmp_path, epochs=60)
    handled = 0
    for offset in (0.05, 0.3, 0.8, 1.5, 2.5, 3.5, 5.0, 7.0, 10.0):
        process = _start("run", path, cwd=tmp_path)
        time.sleep(offset)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=180)
        _, found = runs(tmp_path, "long")
        assert {r.info.status for r in found} <= {"KILLED"}, (offset, [r.info.status for r in found])
        if process.returncode == 130:  # cnnkeras' handler had it: one line, the run (if any) KILLED
            assert "Traceback" not in output and "interrupted" in output, (offset, output[-2000:])
            handled += 1
        else:  # before the CLI's first line ran: Python's own KeyboardInterrupt, inside an import (a Rust
            # extension being imported then reports it as a pyo3 panic naming the interrupted import)
            assert process.returncode in (1, -signal.SIGINT), (offset, process.returncode, output[-2000:])
            assert ("KeyboardInterrupt" in output or "panicked" in output) and "cnnkeras.cli" not in "".join(
                line for line in output.splitlines() if "in main" in line), (offset, output[-2000:])
            assert not found, (offset, "a run was created before the handler existed")
    assert handled >= 6, handled


SWEEP = """
    search:
      n_trials: 3
      pruner: {name: none}
      parameters:
        train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
    """


def sweep_file(tmp_path, search: str = SWEEP, *, epochs: int = 2, name: str = "sw", tracking: str | None = None) -> str:
    path = tmp_path / f"{name}.yaml"
    uri = tracking if tracking is not None else f'tracking: {{uri: "sqlite:///{tmp_path / "mlflow.db"}"}}\n'
    path.write_text(textwrap.dedent(f"""
        name: {name}
        seed: 5
        data: {{source: digits, subset: 500}}
        train: {{epochs: {epochs}, batch_size: 32}}
        """) + uri + SWEEP_MODEL + textwrap.dedent(search))
    return str(path)


def _running_trial(path, timeout: float = 180):
    config = cnnkeras.load_config(path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            study = load_study(config)
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"
                       and t.user_attrs.get("mlflow_run_id")]
            if running:
                return running[0]
        except KeyError:
            pass
        time.sleep(0.3)
    raise AssertionError("no trial started in time")


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_sigterm_in_a_sweep_kills_the_trials_runs_queues_them_and_resume_finishes(tmp_path, isolation):
    path = sweep_file(tmp_path, SWEEP + f"  isolation: {isolation}\n", epochs=30)
    process = _start("sweep", path, "-q", cwd=tmp_path)
    trial = _running_trial(path)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 143, output
    assert "stopped by SIGTERM" in output and "Resume with the same command" in output
    client, found = runs(tmp_path, "sw")
    child = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert child.info.status == "KILLED"
    assert [r.info.status for r in found if r.data.tags.get("cnnkeras.kind") == "sweep"] == ["KILLED"]
    study = load_study(cnnkeras.load_config(path))
    stopped = study.trials[trial.number]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["stale"] is True
    assert "stopped by SIGTERM" in stopped.user_attrs["reason"]

    result = cnnkeras.sweep(path, ["train.epochs=1", "search.join=any"], progress=False)
    counted = [t for t in result.trials if not t["stale"]]
    assert len(counted) == 3 and {t["state"] for t in counted} == {"COMPLETE"}
    assert any(t["user_attrs"].get("retry_of") == trial.number for t in counted)
    _, found = runs(tmp_path, "sw")
    assert "RUNNING" not in {r.info.status for r in found}


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_worker_whose_sweep_process_is_killed_stops_and_closes_its_run(tmp_path):
    path = sweep_file(tmp_path, SWEEP + "  isolation: process\n", epochs=40)
    process = _start("sweep", path, "-q", cwd=tmp_path)
    trial = _running_trial(path)
    workers = _descendants(process.pid)
    assert workers
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.time() + 120
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") and
                                         open(f"/proc/{w}/stat").read().split()[2] != "Z" for w in workers):
        time.sleep(0.3)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}")
                and open(f"/proc/{w}/stat").read().split()[2] != "Z"], "the worker trained on as an orphan"
    client, _ = runs(tmp_path, "sw")
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["cnnkeras.failure_reason"]


@pytest.mark.parametrize("how", ["config", "environment", "flag"])
def test_a_dead_sweeps_run_is_closed_failed_however_the_tracking_store_was_given(tmp_path, how):
    """Issue 24: with the store given by $MLFLOW_TRACKING_URI, a dead process's run stayed RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, epochs=40, tracking=f'tracking: {{uri: "{uri}"}}\n' if how == "config" else "")
    env = _env()
    extra = []
    if how == "environment":
        env["MLFLOW_TRACKING_URI"] = uri
    elif how == "flag":
        extra = ["--tracking-uri", uri]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # a working directory whose ./mlflow.db is not the store
    process = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q", *extra], cwd=elsewhere,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    config = cnnkeras.load_config(path)
    deadline = time.time() + 180
    trial = None
    while time.time() < deadline and trial is None:
        try:
            trial = next((t for t in load_study(config).get_trials(deepcopy=False)
                          if t.state.name == "RUNNING" and t.user_attrs.get("mlflow_run_id")), None)
        except KeyError:
            pass
        time.sleep(0.3)
    assert trial is not None, process.stdout.read() if process.poll() is not None else "no trial started"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q", "train.epochs=1", "--join-anyway", *extra],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    client = MlflowClient(uri)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "sweep process died" in run.data.tags["cnnkeras.failure_reason"]
    assert not (elsewhere / "mlflow.db").exists()


def test_a_trial_that_keeps_dying_is_queued_again_at_most_max_retries_times(tmp_path):
    path = sweep_file(tmp_path, SWEEP.replace("n_trials: 3", "n_trials: 2") + "  max_retries: 1\n", epochs=1)
    config = cnnkeras.load_config(path)
    study = load_study(config)
    distribution = {"train.optimizer.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)}
    first = study.ask(distribution)  # left RUNNING: its process "died" before its second try
    first.set_user_attr("retries", 1)
    result = cnnkeras.sweep(path, progress=False)
    by_number = {t["number"]: t for t in result.trials}
    dead = by_number[first.number]
    assert dead["state"] == "FAIL" and not dead["stale"]  # counted: it is not queued again
    assert "not queued again (search.max_retries: 1)" in dead["user_attrs"]["reason"]
    assert not any(t["user_attrs"].get("retry_of") == first.number for t in result.trials)
    assert len([t for t in result.trials if not t["stale"]]) == 2


def test_a_streak_of_failed_trials_stops_the_sweep_in_one_line(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 10
          max_consecutive_failures: 3
          pruner: {name: none}
          parameters:
            data.subset: {type: categorical, choices: [3]}   # 3 images cannot be split into 10 classes
        """, epochs=1)
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "stopped the sweep: 3 trials in a row failed" in " ".join(output.split())
    assert "search.max_consecutive_failures: 3" in " ".join(output.split()) and "Traceback" not in output
    study = load_study(cnnkeras.load_config(path))
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3


def test_a_failed_trial_keeps_its_traceback_on_its_run_and_verbose_prints_it(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 1
          pruner: {name: none}
          parameters:
            data.subset: {type: categorical, choices: [3]}
        """, epochs=1)
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "--verbose", "sweep", path], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert "Traceback (most recent call last)" in done.stderr, done.stderr
    client, found = runs(tmp_path, "sw")
    child = next(r for r in found if "mlflow.parentRunId" in r.data.tags)
    text = open(client.download_artifacts(child.info.run_id, "failure/traceback.txt", str(tmp_path))).read()
    assert text.startswith("Traceback (most recent call last)") and "DataError" in text
    quiet = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "--trials", "2"], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert "Traceback" not in quiet.stdout + quiet.stderr


def test_importing_cnnkeras_changes_nothing_in_the_process():
    """Issue 24: the package set environment variables and pointed stderr at /dev/null while
    TensorFlow imported, so a broken CUDA install said nothing.

    Checked twice: the package and its light modules on their own, and the heavy ones after
    Keras and TensorFlow (which set variables of their own) are loaded.
    """
    probe = textwrap.dedent("""
        import json, os, sys
        {first}
        env, hooks = dict(os.environ), list(sys.meta_path)
        {then}
        print(json.dumps({{"env": sorted(set(os.environ.items()) ^ set(env.items())),
                           "hooks": [type(h).__name__ for h in sys.meta_path if h not in hooks]}}))
        """)
    env = {k: v for k, v in _env().items() if not k.startswith(("TF_", "MLFLOW_"))}
    for first, then in (("", "import cnnkeras, cnnkeras.api, cnnkeras.config, cnnkeras.cli"),
                        ("import keras, tensorflow", "import cnnkeras.runner, cnnkeras.studies.sweep, cnnkeras.api")):
        done = subprocess.run([sys.executable, "-c", probe.format(first=first, then=then)], capture_output=True,
                              text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"env": [], "hooks": []}, then
    done = subprocess.run([sys.executable, "-c", "import cnnkeras.runner"], capture_output=True, text=True,
                          timeout=180, env=env)
    assert "oneDNN" in done.stderr or "cuda" in done.stderr.lower()  # TensorFlow's own lines reach the user's stderr


def _agreement(folder) -> tuple[int, int, list[str]]:
    """(counted COMPLETE trials, COMPLETE runs no newer trial replaced, RUNNING runs) of a folder's sweep."""
    study = load_study(cnnkeras.load_config(str(folder / "sw.yaml")))
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    counted = [t for t in trials if t.state.name == "COMPLETE" and not t.user_attrs.get("stale")
               and t.number not in retried]
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sw")
    children = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
                if "mlflow.parentRunId" in r.data.tags]
    complete_runs = {r.info.run_id for r in children if r.info.status == "FINISHED"
                     and r.data.tags.get("cnnkeras.trial_state") == "COMPLETE"}
    assert {t.user_attrs["mlflow_run_id"] for t in counted} == complete_runs, "Optuna and MLflow disagree"
    return len(counted), len(complete_runs), [r.info.run_name for r in children if r.info.status == "RUNNING"]


def test_a_journal_cut_back_anywhere_in_a_trial_leaves_optuna_and_mlflow_agreeing(tmp_path):
    """Issue 24: after a torn journal was cut back, MLflow kept a run COMPLETE while Optuna ran the trial
    again (7 COMPLETE runs for 6 trials). Cut at every record of the last trial, the resumed sweep ends
    with exactly the total, and every COMPLETE run is exactly one counted trial's."""
    import shutil

    original = tmp_path / "original"
    original.mkdir()
    path = sweep_file(original, SWEEP.replace("n_trials: 3", "n_trials: 2"), epochs=1)
    cnnkeras.sweep(path, progress=False)
    journal = (original / ".cnnkeras" / "sw.journal").read_bytes().split(b"\n")[:-1]
    starts = [i for i, line in enumerate(journal) if json.loads(line).get("op_code") == 4]  # trial creations
    for keep in range(starts[-1], len(journal)):
        folder = tmp_path / f"cut-{keep}"
        shutil.copytree(original, folder)
        config = (folder / "sw.yaml").read_text().replace(str(original), str(folder))
        (folder / "sw.yaml").write_text(config)
        (folder / ".cnnkeras" / "sw.journal").write_bytes(b"\n".join(journal[:keep]) + b"\n" + journal[keep][:17])
        cnnkeras.sweep(str(folder / "sw.yaml"), progress=False)
        counted, complete_runs, running = _agreement(folder)
        assert (counted, complete_runs, running) == (2, 2, []), keep
