"""The served stack, end to end: sweep processes sharing a PostgreSQL study, tracked on an HTTP
``mlflow server`` (PostgreSQL backend, served artifacts, basic auth), under faults.

Everything is real and on loopback: Debian's PostgreSQL, MLflow's own server, ``cnnkeras
sweep`` processes. The faults are real too: ``kill -9`` of a worker, a database restart and
a 20 s database outage, a 20 s tracking-server outage, a missing login.
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

from cnnkeras.tracking import internal_metrics, to_mlflow

from ..conftest import REPO
from ..conftest import SWEEP_MODEL as MODEL
from ..servers import ADMIN, PG_PASSWORD, USER, wait_until

pytestmark = pytest.mark.slow  # real PostgreSQL and mlflow servers, faults that wait 20 s

SECRET = PG_PASSWORD  # the cluster's real password (scram-sha-256): accepted, and must never show


def served_sweep(tmp_path, server, storage: str, *, name: str, trials: int, epochs: int = 2,
                 search: str = "") -> list[str]:
    """A small digits sweep stored in ``storage`` and tracked on ``server``; returns its command."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        seed: 5
        data: {{source: digits, subset: 500}}
        train: {{epochs: {epochs}, batch_size: 32, optimizer: {{name: adam}}}}
        tracking: {{uri: "{server.url}"}}
        """) + MODEL + textwrap.dedent(f"""
        search:
          n_trials: {trials}
          log_models: true
          pruner: {{name: none}}
          storage: "{storage}"
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
            train.l2: {{type: float, low: 1.0e-6, high: 1.0e-3, log: true}}
        """) + search)
    return [sys.executable, "-m", "cnnkeras.cli", "sweep", str(path)]


def start(command: list[str], server, auth=USER) -> subprocess.Popen:
    return subprocess.Popen(command, env=server.env(auth), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(processes: list[subprocess.Popen], timeout: float = 900) -> list[str]:
    outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * len(processes), "\n-----\n".join(o[-4000:] for o in outputs)
    return outputs


def study_of(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage)


def trials_now(storage: str, name: str) -> list:
    try:
        return study_of(storage, name).get_trials(deepcopy=False)
    except (KeyError, Exception):
        return []


def runs_of(server, experiment: str):
    client = server.client()
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("cnnkeras.kind") == "sweep"]
    children = {r.info.run_id: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return client, parents, children


def assert_optuna_and_mlflow_agree(storage: str, name: str, server) -> list:
    """Every trial's Optuna state matches its MLflow run; nothing is left RUNNING anywhere."""
    trials = study_of(storage, name).get_trials(deepcopy=False)
    client, parents, children = runs_of(server, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    assert not [r.info.run_name for r in children.values() if r.info.status == "RUNNING"]
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.user_attrs.get("stale"):
            continue
        run = children[run_id]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["cnnkeras.trial_number"] == str(trial.number)
        assert run.data.tags["cnnkeras.trial_state"] == trial.state.name
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}[trial.state.name]
    return trials


def test_three_workers_on_one_postgres_study_and_an_authenticated_server(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    storage = cluster.url("optuna", password=SECRET)  # the real password: accepted, and must never show
    command = served_sweep(tmp_path, server, storage, name="team", trials=12)
    outputs = finish([start(command, server) for _ in range(3)])

    trials = assert_optuna_and_mlflow_agree(storage, "team", server)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert 12 <= len(complete) <= 14 and len(complete) == len(trials)  # the documented overshoot
    assert len({t.number for t in trials}) == len(trials)
    settings = {tuple(sorted(t.params.items())) for t in complete}
    assert len(settings) == len(complete) >= 12  # no worker repeats another's draws
    assert sorted({t.user_attrs["worker"] for t in trials}) == [0, 1, 2]
    assert len({t.user_attrs["sampler_seed"] for t in trials}) == 3

    client, parents, children = runs_of(server, "team")
    assert len(children) == len(trials)
    for trial in complete:
        run = children[trial.user_attrs["mlflow_run_id"]]
        assert [m.step for m in client.get_metric_history(run.info.run_id, to_mlflow("val_accuracy"))] == [1, 2]
        assert trial.values[0] == pytest.approx(internal_metrics(run.data.metrics)["best_val_accuracy"])
        assert "model/model.keras" in {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert run.data.tags["cnnkeras.sampler_seed"] == str(trial.user_attrs["sampler_seed"])
    parent = parents[0]
    assert internal_metrics(parent.data.metrics)["trials_running"] == 0 and internal_metrics(parent.data.metrics)["trials_complete"] == len(trials)

    # The storage password appears nowhere: params, tags, artifacts, the study's saved config, the console.
    for run in [parent, *children.values()]:
        assert SECRET not in json.dumps([run.data.params, run.data.tags])
    assert parent.data.params["search.storage"] == cluster.url("optuna", password="***")
    sweep_json = client.download_artifacts(parent.info.run_id, "sweep.json", str(tmp_path))
    assert SECRET not in open(sweep_json).read()
    assert SECRET not in json.dumps(study_of(storage, "team").user_attrs)
    assert all(SECRET not in output for output in outputs)
    assert any(":***@" in output for output in outputs)


def test_kill_9_of_a_worker_fails_its_trial_with_the_reason_and_requeues_it(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    storage = cluster.url("optuna")
    command = served_sweep(tmp_path, server, storage, name="kill", trials=6, epochs=4,
                           search="  heartbeat_s: 1\n  stale_after_s: 5\n")
    victim = start(command, server)
    first = wait_until(lambda: [t for t in trials_now(storage, "kill")
                                if t.state.name == "RUNNING" and t.user_attrs.get("mlflow_run_id")],
                       240, "the first worker started no trial")[0]
    survivor = start(command, server)
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    output = finish([survivor])[0]

    trials = assert_optuna_and_mlflow_agree(storage, "kill", server)
    dead = [t for t in trials if t.number == first.number][0]
    assert dead.state.name == "FAIL" and dead.user_attrs["stale"] is True
    assert "stopped sending heartbeats" in dead.user_attrs["reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == dead.params
    counted = [t for t in trials if not t.user_attrs.get("stale") and t.number != dead.number]
    assert len(counted) == 6 and all(t.state.name == "COMPLETE" for t in counted)
    client, _, children = runs_of(server, "kill")
    run = children[dead.user_attrs["mlflow_run_id"]]
    assert run.info.status == "FAILED" and "stopped sending heartbeats" in run.data.tags["cnnkeras.failure_reason"]
    assert run.data.tags["cnnkeras.trial_state"] == "FAIL"
    assert f"trial {dead.number:3d} FAIL" not in output or "heartbeats" in output


def test_database_restart_and_a_20_s_outage_lose_and_rerun_nothing(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    storage = cluster.url("optuna")
    command = served_sweep(tmp_path, server, storage, name="blip", trials=6, epochs=3)
    workers = [start(command, server) for _ in range(2)]
    wait_until(lambda: len([t for t in trials_now(storage, "blip") if t.state.name == "RUNNING"]) == 2,
               240, "two trials never ran at once")
    cluster.restart()  # under a second, mid-trial
    wait_until(lambda: any(t.state.name == "COMPLETE" for t in trials_now(storage, "blip")), 240,
               "no trial finished after the restart")
    cluster.stop()
    time.sleep(20)
    cluster.start()
    outputs = finish(workers)

    trials = assert_optuna_and_mlflow_agree(storage, "blip", server)
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state.name) for t in trials]
    assert 6 <= len(trials) <= 7
    assert not [t.number for t in trials if "retry_of" in t.user_attrs or t.user_attrs.get("stale")]
    assert any("unreachable" in o for o in outputs) and any("is back after" in o for o in outputs)
    assert not any("Traceback" in o for o in outputs)


def test_a_20_s_tracking_server_outage_is_waited_out(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    storage = cluster.url("optuna")
    command = served_sweep(tmp_path, server, storage, name="mlflow-down", trials=4, epochs=3)
    worker = start(command, server)
    wait_until(lambda: any(t.state.name == "RUNNING" and t.user_attrs.get("mlflow_run_id")
                           for t in trials_now(storage, "mlflow-down")), 240, "no trial started")
    server.stop()
    time.sleep(20)
    server.start()
    output = finish([worker])[0]
    trials = assert_optuna_and_mlflow_agree(storage, "mlflow-down", server)
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    client, _, children = runs_of(server, "mlflow-down")
    for run in children.values():  # every epoch of every trial was logged, none lost to the outage
        assert [m.step for m in client.get_metric_history(run.info.run_id, to_mlflow("val_accuracy"))] == [1, 2, 3]
    assert "Traceback" not in output


def test_without_a_login_or_server_or_database_one_line_and_a_non_zero_exit_in_seconds(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    command = served_sweep(tmp_path, server, cluster.url("optuna"), name="nologin", trials=2)

    def run(cmd: list[str], auth=USER) -> tuple[int, str, float]:
        started = time.time()
        done = subprocess.run(cmd, env=server.env(auth), capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr, time.time() - started

    code, output, seconds = run(command, auth=None)
    assert code == 2 and "needs a login (HTTP 401)" in output and "MLFLOW_TRACKING_USERNAME" in output
    assert "Traceback" not in output and seconds < 60
    code, output, seconds = run(command, auth=(USER[0], "wrong-password-000"))
    assert code == 2 and "refused the login of 'team' (HTTP 401)" in output and "Traceback" not in output

    nowhere = served_sweep(tmp_path, server, cluster.url("optuna"), name="nowhere", trials=2)
    text = open(nowhere[-1]).read()
    open(nowhere[-1], "w").write(text.replace(server.url, "http://127.0.0.1:9"))
    code, output, seconds = run(nowhere)
    assert code == 2 and "is not reachable" in output and "Traceback" not in output and seconds < 60

    nothing_there = "postgresql+psycopg://postgres:pw@127.0.0.1:9/optuna"
    gone = served_sweep(tmp_path, server, nothing_there, name="nodb", trials=2, search="  storage_wait_s: 3\n")
    code, output, seconds = run(gone)
    assert code == 2 and "unreachable" in output and "3 s" in output, output[-2000:]
    assert "Traceback" not in output and seconds < 60


@pytest.mark.parametrize("how", ["config", "environment", "flag"])
def test_a_killed_workers_run_is_closed_failed_however_the_server_was_given(tmp_path, served, how):
    """Issue 24: with the server given by $MLFLOW_TRACKING_URI (the documented worker set-up), a
    kill -9'ed worker's run stayed RUNNING for good: the clean-up read the config key, None then."""
    cluster, server = served
    cluster.create_database("optuna")
    storage = cluster.url("optuna")
    command = served_sweep(tmp_path, server, storage, name=f"uri-{how}", trials=3, epochs=20,
                           search="  heartbeat_s: 1\n  stale_after_s: 4\n")
    path = command[-1]
    env = server.env()
    if how != "config":
        text = open(path).read().replace(f'tracking: {{uri: "{server.url}"}}\n', "")
        open(path, "w").write(text)
        if how == "environment":
            env["MLFLOW_TRACKING_URI"] = server.url
        else:
            command = [*command, "--tracking-uri", server.url]
    victim = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=tmp_path)
    first = wait_until(lambda: [t for t in trials_now(storage, f"uri-{how}")
                                if t.state.name == "RUNNING" and t.user_attrs.get("mlflow_run_id")],
                       240, "the first worker started no trial")[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor = subprocess.Popen([*command, "train.epochs=1", "--join-anyway"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output = finish([survivor])[0]
    client, _, children = runs_of(server, f"uri-{how}")
    run = children[first.user_attrs["mlflow_run_id"]]
    assert run.info.status == "FAILED", output[-2000:]
    assert "stopped sending heartbeats" in run.data.tags["cnnkeras.failure_reason"]
    assert not [r for r in children.values() if r.info.status == "RUNNING"]


def test_a_second_user_is_refused_in_one_line_until_granted_then_sweeps(tmp_path, served):
    """Issue 25: a second MLflow user, added as docs/served-stack.md advises, crashed with a 131-line
    traceback (HTTP 403: other users only read the first user's experiment)."""
    cluster, server = served
    cluster.create_database("optuna")
    guest = ("guest", "guest-password-1")
    server._request("POST", "/api/2.0/mlflow/users/create", {"username": guest[0], "password": guest[1]},
                    ADMIN)
    command = served_sweep(tmp_path, server, cluster.url("optuna"), name="shared", trials=1, epochs=1)
    finish([start(command, server)])  # the first user makes the experiment (and owns it)

    more = [*command, "search.n_trials=2"]
    started = time.time()
    refused = subprocess.run(more, env=server.env(guest), capture_output=True, text=True, timeout=300)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert "refused 'guest' (HTTP 403)" in output and "cnnkeras grant guest" in output
    assert len([line for line in output.splitlines() if "error" in line.lower()]) == 1
    assert time.time() - started < 120

    granted = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "grant", "guest", "shared", "--uri", server.url],
                             env=server.env(), capture_output=True, text=True, timeout=120)
    assert granted.returncode == 0 and "guest granted EDIT on experiment shared" in granted.stdout, granted.stderr
    finish([subprocess.Popen(more, env=server.env(guest), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)])
    study = study_of(cluster.url("optuna"), "shared")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


def test_a_wrong_database_password_is_one_line_in_seconds_not_an_outage(tmp_path, served):
    cluster, server = served
    cluster.create_database("optuna")
    command = served_sweep(tmp_path, server, cluster.url("optuna", password="not-the-password"), name="badlogin",
                           trials=1)
    started = time.time()
    done = subprocess.run(command, env=server.env(), capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "refused the login" in output and "Traceback" not in output, output[-2000:]
    assert "not-the-password" not in output and "unreachable" not in output
    assert time.time() - started < 30


def test_a_tracking_address_that_is_not_an_mlflow_server_is_one_line_in_seconds(tmp_path, served):
    import http.server
    import threading

    cluster, server = served
    cluster.create_database("optuna")

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_error(404)

        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        command = served_sweep(tmp_path, server, cluster.url("optuna"), name="wrongpath", trials=1)
        text = open(command[-1]).read().replace(server.url, f"http://127.0.0.1:{web.server_port}/mlflow")
        open(command[-1], "w").write(text)
        started = time.time()
        done = subprocess.run(command, env=server.env(), capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        assert done.returncode == 2 and "is not an MLflow tracking server (HTTP 404" in output, output[-2000:]
        assert "Traceback" not in output and time.time() - started < 30
    finally:
        web.shutdown()


def test_a_worker_from_another_machine_joins_through_the_published_ports_as_documented(tmp_path):
    """docs/served-stack.md's remote worker, on loopback: the storage URL and the tracking URI without
    passwords (PGPASSWORD and the worker's own MLflow login beside them), MLflow answering only the host
    names it allows (docker-compose.remote.yml). No password shows on any command line."""
    from ..servers import MlflowServer, PostgresCluster

    cluster = PostgresCluster()
    server = None
    try:
        server = MlflowServer(cluster, allowed_hosts="localhost:{port}", host_name="localhost")
        cluster.create_database("optuna")
        users = subprocess.run([sys.executable, str(REPO / "docker" / "mlflow_users.py")], capture_output=True,
                               text=True, timeout=60, env={**os.environ, "MLFLOW_URL": server.url,
                                                           "MLFLOW_ADMIN_PASSWORD": ADMIN[1],
                                                           "MLFLOW_WORKER_USERNAME": "worker",
                                                           "MLFLOW_WORKER_PASSWORD": "worker-password-01"})
        assert users.returncode == 0 and "created MLflow user worker" in users.stdout, users.stderr
        path = tmp_path / "remote.yaml"
        path.write_text(textwrap.dedent("""
            name: remote
            seed: 5
            data: {source: digits, subset: 300}
            train: {epochs: 1, batch_size: 32}
            """) + MODEL + textwrap.dedent("""
            search:
              n_trials: 2
              pruner: {name: none}
              parameters:
                train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
            """))
        env = {k: v for k, v in server.env(("worker", "worker-password-01")).items() if not k.startswith("PG")}
        env.update(CNNKERAS_STORAGE=cluster.url("optuna", password=None), PGPASSWORD=PG_PASSWORD,
                   MLFLOW_TRACKING_URI=f"http://localhost:{server.port}")
        worker = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "sweep", str(path)], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_until(lambda: worker.poll() is not None or any(t.state.name == "RUNNING"
                                                            for t in trials_now(cluster.url("optuna"), "remote")),
                   240, "the remote worker started no trial")
        lines = [open(f"/proc/{pid}/cmdline", "rb").read() for pid in os.listdir("/proc") if pid.isdigit()
                 and os.path.exists(f"/proc/{pid}/cmdline")]
        assert not [line for line in lines if PG_PASSWORD.encode() in line]  # nothing in `ps`
        output = finish([worker])[0]
        assert [t.state.name for t in study_of(cluster.url("optuna"), "remote").trials] == ["COMPLETE", "COMPLETE"]
        assert PG_PASSWORD not in output

        refused = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "sweep", str(path)], env={
            **env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server.port}"}, cwd=tmp_path,  # a name it does not allow
            capture_output=True, text=True, timeout=120)
        said = refused.stdout + refused.stderr
        assert refused.returncode == 2 and "refuses the host name '127.0.0.1:" in said and "Traceback" not in said, said
    finally:
        if server is not None:
            server.destroy()
        cluster.destroy()
