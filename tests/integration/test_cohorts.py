"""Cohorts: K trials trained as one program, each still its own run and trial (issue 15).

The correctness test compares every member with the same config trained alone, on this
process's backend (TensorFlow) and, in a child process, on JAX. The sweep tests run
whole ``cnnkeras sweep`` processes: groups split by batch size, a member's run and model,
``reproduce`` of a member, SIGKILL and Ctrl-C in the middle of a cohort, jobs, the size
measurement.
"""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import optuna
import pytest
from mlflow.tracking import MlflowClient

import cnnkeras
from cnnkeras.cohort import cohort_key, group_by_cohort, run_cohort, split_reason
from cnnkeras.data.dataset import load_dataset
from cnnkeras.errors import CnnkerasError, TrainingDiverged
from cnnkeras.runner import run
from cnnkeras.studies.objective import PruningCallback
from cnnkeras.studies.study import load_study
from cnnkeras.tracking import internal_metrics, to_mlflow

from ..conftest import REPO

pytestmark = pytest.mark.slow  # trains cohorts and their single-run twins

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")

BASE = """
name: co
seed: 3
data: {source: digits, resize: [16, 16], subset: 600}
model: {arch: lenet5}
train: {epochs: 3, batch_size: 32, optimizer: {name: adam, learning_rate: 0.002}}
"""

MEMBERS = {  # different learning rates, L2 and dropout; one pruned at epoch 2, one diverging
    "plain": ["train.optimizer.learning_rate=0.003"],
    "regularized": ["train.optimizer.learning_rate=0.0005", "train.l2=0.001", "model.dropout=0.3"],
    "pruned": ["train.optimizer.learning_rate=0.001", "model.dropout=0.1"],
    # An L2 factor of 1e38 makes the penalty overflow float32 at the first step, on any CPU.
    "diverging": ["train.l2=1e38"],
}


def _pruner() -> PruningCallback:
    """A real Optuna trial whose pruner prunes at epoch 2 (the first report after its warm-up)."""
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=2))
    return PruningCallback(study.ask(), "val_accuracy")


def _configs(write_config, uri: str):
    path = write_config(BASE + f'tracking: {{uri: "{uri}", log_plots: false}}\n')
    return {name: cnnkeras.load_config(path, overrides) for name, overrides in MEMBERS.items()}


def _close(alone: list[float], together: list[float], *, loss: bool) -> bool:
    if len(alone) != len(together):
        return False
    for a, b in zip(alone, together):
        if not (math.isfinite(a) and math.isfinite(b)):
            if not (math.isnan(a) and math.isnan(b)) and a != b:
                return False
        elif loss and abs(a - b) > 1e-3 * max(abs(a), 1e-12):
            return False
        elif not loss and abs(a - b) > 1e-4:
            return False
    return True


def test_each_member_of_a_cohort_matches_its_run_alone(write_config, tmp_path):
    """Issue 15's tolerance: 1e-4 on accuracy-type metrics, 1e-3 relative on losses, per epoch."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    configs = _configs(write_config, uri)
    names = list(configs)
    assert len(group_by_cohort(list(configs.values()))) == 1  # all four share one program

    results = run_cohort(list(configs.values()), progress=False,
                         callbacks=[[_pruner()] if n == "pruned" else [] for n in names])
    together = dict(zip(names, results))
    assert isinstance(together["diverging"], TrainingDiverged)
    assert "non-finite loss" in str(together["diverging"])

    for name in names:
        alone_callbacks = [_pruner()] if name == "pruned" else []
        try:
            alone = run(configs[name], progress=False, callbacks=alone_callbacks)
        except TrainingDiverged as exc:
            assert name == "diverging", exc
            continue
        member = together[name]
        assert not isinstance(member, Exception), member
        assert member.epochs_run == alone.epochs_run == (2 if name == "pruned" else 3)
        for key, values in alone.history.items():
            if key in ("epoch_time_s",):
                continue
            assert _close(values, member.history[key], loss="loss" in key), (name, key, values, member.history[key])
        for key, value in alone.summary.items():
            if key.startswith("test_"):
                assert _close([value], [member.summary[key]], loss="loss" in key), (name, key)

    client = MlflowClient(uri)
    statuses = {name: client.get_run(r.run_id).info.status for name, r in together.items() if name != "diverging"}
    assert statuses == {"plain": "FINISHED", "regularized": "FINISHED", "pruned": "FINISHED"}
    failed = [r for r in client.search_runs([client.get_experiment_by_name("co").experiment_id])
              if r.info.status == "FAILED"]
    assert len(failed) >= 1 and "non-finite loss" in failed[0].data.tags["cnnkeras.failure_reason"]
    pruned_run = client.get_run(together["pruned"].run_id)
    assert len(client.get_metric_history(pruned_run.info.run_id, to_mlflow("val_accuracy"))) == 2
    assert pruned_run.data.tags["cnnkeras.cohort_size"] == "4"

    # Each member's own model, loadable with safe_mode like any run's, predicts as it did.
    model_path = client.download_artifacts(together["plain"].run_id, "model/model.keras", str(tmp_path / "dl"))
    loaded = keras.saving.load_model(model_path, safe_mode=True)
    x = load_dataset(configs["plain"].data, seed=3).x_test[:16]
    assert abs(loaded.predict(x, verbose=0) - together["plain"].model.predict(x, verbose=0)).max() < 1e-5


@needs_jax
def test_each_member_matches_its_run_alone_on_jax_too(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{__file__}::test_each_member_of_a_cohort_matches_its_run_alone",
                           "--basetemp", str(tmp_path / "t")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_configs_that_differ_in_their_training_loop_are_refused_as_one_cohort(write_config):
    path = write_config(BASE + "tracking: {enabled: false}\n")
    a = cnnkeras.load_config(path, ["train.batch_size=16"])
    b = cnnkeras.load_config(path, ["train.batch_size=64", "train.optimizer.learning_rate=0.01"])
    c = cnnkeras.load_config(path, ["train.batch_size=16", "model.arch=nin", "train.l2=0.1"])
    assert cohort_key(a) == cohort_key(c) != cohort_key(b)
    assert group_by_cohort([a, b, c]) == [[0, 2], [1]]
    assert split_reason([a, b, c], group_by_cohort([a, b, c])) == "train.batch_size"
    with pytest.raises(CnnkerasError, match="differ in train.batch_size"):
        run_cohort([a, b], progress=False)
    smoothing = cnnkeras.load_config(path, ["train.batch_size=16", "train.label_smoothing=0.1"])
    assert cohort_key(smoothing) != cohort_key(a)  # one-hot labels: another loop


# ----------------------------------------------------------------------------- sweeps


def sweep_file(tmp_path, search: str, *, epochs: int = 3) -> str:
    path = tmp_path / "co.yaml"
    path.write_text(textwrap.dedent(f"""
        name: co
        seed: 3
        data: {{source: digits, resize: [16, 16], subset: 500}}
        model: {{arch: lenet5}}
        train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: adam}}}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}", log_plots: false}}
        """) + textwrap.dedent(search))
    return str(path)


def cli(*args: str, cwd, backend: str = "tensorflow", timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-m", "cnnkeras.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def children(tmp_path, experiment="co"):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], max_results=1000)
    return client, [r for r in found if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=needs_jax), "tensorflow"])
def test_a_cohort_sweep_keeps_every_trial_whole_and_says_how_it_grouped_them(tmp_path, backend):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 5
          cohort: 4
          cohort_probe: false
          sampler: {name: random, seed: 2}
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
            model.dropout: {type: float, low: 0.0, high: 0.5}
            train.batch_size: {type: categorical, choices: [32, 64]}
        """)
    done = cli("sweep", path, cwd=tmp_path, backend=backend)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    study = load_study(cnnkeras.load_config(path))
    first_four = [t for t in study.trials if t.number < 4]
    if len({t.params["train.batch_size"] for t in first_four}) > 1:
        assert "since they differ in train.batch_size" in done.stderr
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    client, runs = children(tmp_path)
    assert sorted(int(r.data.tags["cnnkeras.trial_number"]) for r in runs) == [0, 1, 2, 3, 4]
    for trial in study.trials:
        run = next(r for r in runs if int(r.data.tags["cnnkeras.trial_number"]) == trial.number)
        assert run.info.status == "FINISHED" and run.data.tags["cnnkeras.trial_state"] == "COMPLETE"
        assert [m.step for m in client.get_metric_history(run.info.run_id, to_mlflow("gap_accuracy"))] == [1, 2, 3]
        assert trial.values[0] == pytest.approx(internal_metrics(run.data.metrics)["best_val_accuracy"])
        assert float(run.data.params["train.optimizer.learning_rate"]) == pytest.approx(
            trial.params["train.optimizer.learning_rate"])
        assert "test_accuracy" in internal_metrics(run.data.metrics) and "best_epoch" in internal_metrics(run.data.metrics)
    in_cohorts = [r for r in runs if int(r.data.tags.get("cnnkeras.cohort_size", 1)) > 1]
    assert in_cohorts, "the first four trials were asked together"

    member = in_cohorts[0]
    again = cli("reproduce", member.info.run_id, "--tolerance", "1e-4", cwd=tmp_path, backend=backend)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "match: all" in again.stdout


def _training(trial, client) -> bool:
    """The trial's model is training: it reported an epoch, or (a cohort under a pruner, which reports
    its epochs in member order once trained) its run has logged its parameters, the last step before fit."""
    if trial.intermediate_values:
        return True
    run_id = trial.user_attrs.get("mlflow_run_id")
    return bool(run_id) and "cnnkeras.arch" in client.get_run(run_id).data.tags


def _wait_for_cohort(path, process, *, members: int, timeout=240):
    config = cnnkeras.load_config(path)
    client = MlflowClient(config.tracking.uri)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            study = optuna.load_study(study_name="co", storage=load_study(config)._storage)
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
            if len(running) == members and all(_training(t, client) for t in running):
                time.sleep(1.0)  # into the first epochs
                return study
        except KeyError:
            pass
        time.sleep(0.3)
    raise AssertionError("no cohort started in time")


COHORT_SEARCH = """
    search:
      n_trials: 3
      cohort: 2
      cohort_probe: false
      pruner: {name: median, startup_trials: 5}
      parameters:
        train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    """


def _start(path, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "sweep", path, "--quiet", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_mid_cohort_then_resume_ends_with_exactly_the_total(tmp_path):
    path = sweep_file(tmp_path, COHORT_SEARCH, epochs=12)
    process = _start(path)
    _wait_for_cohort(path, process, members=2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    result = cnnkeras.sweep(path, ["train.epochs=2", "search.join=any"], progress=False)
    counted = [t for t in result.trials if not t["stale"]]
    stale = [t for t in result.trials if t["stale"]]
    assert len(counted) == 3 and all(t["state"] in ("COMPLETE", "PRUNED") for t in counted)
    assert len(stale) == 2 and {t["state"] for t in stale} == {"FAIL"}
    numbers = [t["number"] for t in result.trials]
    assert len(numbers) == len(set(numbers))
    retried = {t["user_attrs"].get("retry_of") for t in counted}
    assert {t["number"] for t in stale} <= retried  # both members' values were queued again
    client, runs = children(tmp_path)
    died = [r for r in runs if r.info.status == "FAILED"]
    assert len(died) == 2 and all("sweep process died" in r.data.tags["cnnkeras.failure_reason"] for r in died)


def test_ctrl_c_mid_cohort_fails_every_member_and_resume_retries_them(tmp_path):
    path = sweep_file(tmp_path, COHORT_SEARCH, epochs=12)
    process = _start(path)
    _wait_for_cohort(path, process, members=2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 130, output
    assert "Resume with the same command" in output
    _, runs = children(tmp_path)
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED"]
    study = load_study(cnnkeras.load_config(path))
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(interrupted) == 2 and all(t.user_attrs["stale"] is True for t in interrupted)
    resumed = cnnkeras.sweep(path, ["train.epochs=2", "search.join=any"], progress=False)
    counted = [t for t in resumed.trials if not t["stale"]]
    assert len(counted) == 3
    assert {t.number for t in interrupted} <= {t["user_attrs"].get("retry_of") for t in counted}


def test_a_cohort_prunes_each_member_exactly_as_it_would_have_been_pruned_alone(tmp_path):
    """Issue 24: the same trial was COMPLETE alone and PRUNED in a cohort, the pruner seeing the members'
    reports in another order. Members now report their epochs one after another, each told before the
    next, so the median pruner decides as it would have, trial after trial."""
    search = """
        search:
          n_trials: 8
          cohort: {cohort}
          cohort_probe: false
          sampler: {{name: random, seed: 6}}
          pruner: {{name: median, warmup_epochs: 1, startup_trials: 1}}
          parameters:
            train.optimizer.learning_rate: {{type: categorical, choices: [0.003, 1.0e-6]}}
        """
    states = {}
    for cohort in (1, 4):
        folder = tmp_path / f"cohort-{cohort}"
        folder.mkdir()
        result = cnnkeras.sweep(sweep_file(folder, search.format(cohort=cohort), epochs=4), progress=False)
        states[cohort] = [(t["number"], t["params"], t["state"], t["user_attrs"].get("summary", {}).get("epochs_run"))
                          for t in result.trials]
    assert states[4] == states[1]
    assert {s for _, _, s, _ in states[1]} == {"COMPLETE", "PRUNED"}  # the test decides something
    _, runs = children(tmp_path / "cohort-4")
    client = MlflowClient(f"sqlite:///{tmp_path / 'cohort-4' / 'mlflow.db'}")
    for member in runs:  # a member pruned at epoch p has p epochs in MLflow, as alone
        logged = len(client.get_metric_history(member.info.run_id, to_mlflow("val_accuracy")))
        assert logged == int(member.data.tags.get("cnnkeras.pruned_at_epoch", 4)), member.info.run_name


def test_jobs_run_cohorts_in_worker_processes_and_the_size_is_measured(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 4
          cohort: 2
          jobs: 2
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        """, epochs=1)
    done = cli("sweep", path, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "measured per trial: 1:" in done.stderr  # the size measurement says what it chose and why
    study = load_study(cnnkeras.load_config(path))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    client, runs = children(tmp_path)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert int(parent.data.tags["cnnkeras.cohort_size"]) in (1, 2)


def _worker_pids(parent_pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent_pid and "cnnkeras.studies.worker" in cmdline:
            found.append(int(entry))
    return found


def test_a_cohort_worker_killed_like_the_oom_killer_does_is_retried_in_halves(tmp_path):
    path = sweep_file(tmp_path, """
        search:
          n_trials: 2
          cohort: 2
          cohort_probe: false
          isolation: process
          pruner: {name: median, startup_trials: 5}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        """, epochs=4)
    process = _start(path)
    _wait_for_cohort(path, process, members=2)
    workers = _worker_pids(process.pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "died (killed by SIGKILL; out of memory?): trying two cohorts of 1 and 1" in " ".join(output.split())
    study = load_study(cnnkeras.load_config(path))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]  # the same two trials, retried
    _, runs = children(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert all("worker process died" in r.data.tags["cnnkeras.failure_reason"]
               for r in runs if r.info.status == "FAILED")


MEMORY_CGROUPS = "/sys/fs/cgroup/memory"


@pytest.fixture
def memory_cgroup(tmp_path):
    """A cgroup (v1) whose memory limit makes the kernel's OOM killer act on the processes in it."""
    path = os.path.join(MEMORY_CGROUPS, f"cnnkeras-test-{os.getpid()}-{tmp_path.name}")
    try:
        os.mkdir(path)
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here ({exc.strerror}): the OOM killer cannot be aimed at a test")
    yield path
    for _ in range(50):
        try:
            os.rmdir(path)
            break
        except OSError:  # its last processes are still exiting
            time.sleep(0.2)


@needs_jax
def test_a_cohort_the_oom_killer_stops_is_split_in_halves_and_says_so(tmp_path, memory_cgroup):
    # Each member (a 400000-unit dense layer on digits, with Adam's state) needs about 0.8 GB: a
    # worker training 4 peaks at 4.3 GB, 2 at 2.8 GB, 1 at 2 GB; the sweep process itself 0.55 GB.
    path = tmp_path / "big.yaml"
    path.write_text(textwrap.dedent(f"""
        name: co
        seed: 3
        data: {{source: digits, subset: 300}}
        model:
          arch: sequential
          layers:
            - {{type: flatten}}
            - {{type: dense, units: 400000, activation: relu}}
        train: {{epochs: 1, batch_size: 64}}
        tracking: {{uri: "sqlite:///{tmp_path / 'mlflow.db'}", log_plots: false, log_model: false}}
        search:
          n_trials: 4
          cohort: 4
          cohort_probe: false
          isolation: process
          pruner: {{name: none}}
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
        """))
    with open(os.path.join(memory_cgroup, "memory.limit_in_bytes"), "w") as f:
        f.write(str(3800 * 2**20))
    cnnkeras_bin = os.path.join(os.path.dirname(sys.executable), "cnnkeras")
    script = f'echo $$ > {memory_cgroup}/cgroup.procs && exec {cnnkeras_bin} sweep {path} -q'
    done = subprocess.run(["sh", "-c", script], cwd=tmp_path, env={**os.environ, "KERAS_BACKEND": "jax"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    said = " ".join(done.stderr.split())
    assert "the worker training a cohort of 4 died (killed by SIGKILL; out of memory?): trying two cohorts " \
           "of 2 and 2" in said, said
    study = load_study(cnnkeras.load_config(path))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    _, runs = children(tmp_path)
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 4 and all("killed by SIGKILL) while training a cohort of 4" in
                                    r.data.tags["cnnkeras.failure_reason"] for r in failed)
    assert len([r for r in runs if r.info.status == "FINISHED"]) == 4


def test_postgres_workers_run_cohorts_and_one_killed_mid_cohort_is_taken_over(tmp_path, postgres_url):
    path = sweep_file(tmp_path, f"""
        search:
          n_trials: 4
          cohort: 2
          cohort_probe: false
          heartbeat_s: 1
          stale_after_s: 3
          storage: "{postgres_url}"
          pruner: {{name: median, startup_trials: 5}}
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
        """, epochs=8)
    first = _start(path)
    _wait_for_cohort(path, first, members=2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    second = _start(path, "train.epochs=2", "--join-anyway")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    study = optuna.load_study(study_name="co", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    stale = [t for t in trials if t.user_attrs.get("stale")]
    counted = [t for t in trials if not t.user_attrs.get("stale")]
    seen = "\n".join(f"{t.number} {t.state.name} {t.user_attrs} {t.system_attrs}" for t in trials) + "\n" + output
    assert len(stale) == 2 and all(t.state.name == "FAIL" for t in stale), seen
    assert len(counted) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in counted), seen
    assert {t.number for t in stale} <= {t.user_attrs.get("retry_of") for t in counted}, seen
    assert len({t.number for t in trials}) == len(trials)
    _, runs = children(tmp_path)
    died = [r for r in runs if r.info.status == "FAILED"]
    assert len(died) == 2
