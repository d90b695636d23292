"""docker-compose.yml, .env.example and the images, checked as files (no container engine here).

Where a compose client exists, ``docker compose config`` validates the file as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def test_services_and_health_checks():
    assert {"postgres", "mlflow", "mlflow-users", "worker", "gpu-worker", "ui"} <= set(SERVICES)
    for name in ("postgres", "mlflow", "ui"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert SERVICES["worker"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    assert SERVICES["worker"]["depends_on"]["mlflow-users"] == {"condition": "service_completed_successfully"}
    assert "/mlflow/health" in " ".join(SERVICES["mlflow"]["healthcheck"]["test"])


def test_workers_restart_on_failure_but_never_loop_on_a_permanent_error():
    """Issue 25: ``restart: on-failure`` looped forever on a bad login or config."""
    for name in ("worker", "gpu-worker"):
        assert SERVICES[name]["restart"].startswith("on-failure:")  # bounded
        assert SERVICES[name]["entrypoint"] == ["/app/docker/entrypoint.sh"]
    script = (REPO / "docker" / "entrypoint.sh")
    assert os.access(script, os.X_OK)


@pytest.mark.parametrize("code,expected", [(0, 0), (2, 0), (1, 1), (137, 137), (143, 143)])
def test_the_entrypoint_stops_for_good_on_exit_2_and_passes_other_failures_on(tmp_path, code, expected):
    fake = tmp_path / "cnnkeras"
    fake.write_text(f"#!/bin/sh\nexit {code}\n")
    fake.chmod(0o755)
    done = subprocess.run([str(REPO / "docker" / "entrypoint.sh"), "sweep", "x.yaml"], capture_output=True,
                          text=True, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode == expected
    assert ("not restarting" in done.stderr) == (code == 2)


def test_workers_log_in_as_their_own_user_not_the_admin():
    env = SERVICES["worker"]["environment"]
    assert env["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_WORKER_USERNAME:-worker}"
    assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_WORKER_PASSWORD:?")
    assert "MLFLOW_PASSWORD" not in " ".join(strings(SERVICES["worker"]))  # the admin's password stays out
    users = SERVICES["mlflow-users"]
    assert users["entrypoint"][-1] == "/app/docker/mlflow_users.py" and users["restart"] == "no"


def test_experiments_are_mounted_not_built_in():
    for name in ("worker", "gpu-worker", "ui"):
        assert "./experiments:/app/experiments:ro" in SERVICES[name]["volumes"], name
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        assert "COPY experiments" not in (REPO / dockerfile).read_text()


def test_mlflow_runs_with_basic_auth_behind_the_landing_page():
    command = " ".join(SERVICES["mlflow"]["command"])
    assert "--app-name basic-auth" in command and "--static-prefix /mlflow" in command
    assert "--serve-artifacts" in command and "postgresql+psycopg://" in command
    env = SERVICES["mlflow"]["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_PASSWORD:?")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_SECRET_KEY:?")
    assert (REPO / "docker" / "mlflow-auth.ini").is_file()
    assert "--mlflow-url http://mlflow:5001/mlflow" in " ".join(SERVICES["ui"]["command"])
    worker_env = SERVICES["worker"]["environment"]
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5001/mlflow"
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "CNNKERAS_STORAGE"} <= set(worker_env)



def test_every_mlflow_server_runs_without_mlflows_job_runner():
    """MLflow 3.17 starts six Huey consumers (about 240 MB each) beside a server for GenAI jobs cnnkeras
    never submits: the compose server, the one `cnnkeras ui` starts and the tests' own run without them."""
    from cnnkeras.dashboards.server import MLFLOW_SERVER_ENV

    assert MLFLOW_SERVER_ENV == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    assert SERVICES["mlflow"]["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_only_the_landing_page_is_published_and_only_on_loopback():
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert list(published) == ["ui"]
    assert all(port.startswith("127.0.0.1:") for port in published["ui"])


def test_gpu_workers_use_jax_and_their_number_comes_from_a_variable():
    """Issue 25: the GPU services were fixed to device ids 0 and 1. One service runs --jobs N trials at once,
    each job on its own GPU of CNNKERAS_GPUS (tests/unit/test_scheduler.py: never two jobs on one GPU)."""
    service = SERVICES["gpu-worker"]
    assert service["build"]["dockerfile"] == "Dockerfile.gpu" and service["profiles"] == ["gpu"]
    assert service["environment"]["KERAS_BACKEND"] == "jax"
    assert service["environment"]["CNNKERAS_GPUS"] == "${CNNKERAS_GPUS:-0}"
    assert service["command"][-2:] == ["--jobs", "${CNNKERAS_GPU_WORKERS:-1}"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == "all"
    assert "jax[cuda12]" in (REPO / "Dockerfile.gpu").read_text()


def test_no_literal_secrets_and_every_variable_documented():
    documented = env_example()
    for text in strings(COMPOSE):
        for match in re.finditer(r"://(?:\$\{[^}]*\}|[^:/@\s$]+):([^@\s]+)@", text):  # user:password@
            assert match.group(1).startswith("${") or match.group(1).startswith("$${"), text
        for variable in VARIABLE.findall(text):
            assert variable in documented, f"{variable} is used by docker-compose.yml but not in .env.example"
    for key in ("POSTGRES_PASSWORD", "MLFLOW_PASSWORD", "MLFLOW_SECRET_KEY", "MLFLOW_WORKER_PASSWORD"):
        assert documented[key] == "", f"{key} must be empty in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    assert "OPTUNA_STORAGE" not in (REPO / "docker-compose.yml").read_text()  # read by nothing


def test_passwords_are_never_in_a_url_nor_on_a_command_line():
    """Issue 25: the database password was pasted unescaped into three URLs and showed in ``ps`` through
    ``--backend-store-uri``. PostgreSQL clients read PGPASSWORD; URLs carry no password."""
    for compose in (COMPOSE, yaml.safe_load((REPO / "docker-compose.remote.yml").read_text())):
        for name, service in compose["services"].items():
            command = " ".join(strings(service.get("command", []))) + " ".join(strings(service.get("entrypoint", [])))
            assert "PASSWORD" not in command, name
            for text in strings(service):
                if "://" in text:
                    assert "PASSWORD" not in text, (name, text)
                    assert not re.search(r"://(?:\$\{[^}]*\}|[^:/@\s$]+):[^@\s]+@", text), (name, text)
    for name in ("worker", "gpu-worker", "ui", "mlflow"):
        assert "PGPASSWORD" in (SERVICES[name]["environment"] if name != "gpu-worker" else
                                {**SERVICES["worker"]["environment"], **SERVICES[name]["environment"]}), name


def test_volumes_stay_inside_the_repository_and_the_context_is_small():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume[: volume.index("}") + 1] if volume.startswith("${") else volume.split(":", 1)[0]
            if source.startswith((".", "$")):
                assert not source.startswith(".."), (name, volume)
                assert source.startswith("./") or source.startswith("${CNNKERAS_DATA:-./"), (name, volume)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".venv/", ".git/", ".env", "data/", "mlartifacts/"} <= set(ignored)
    assert "'.[server]'" in (REPO / "Dockerfile").read_text()


def test_docker_compose_config_accepts_the_file(tmp_path):
    """Debian's docker-compose (installed by .ci/run) or the docker compose plugin validates the file."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        client = [docker, "compose"]
    elif shutil.which("docker-compose"):
        client = [shutil.which("docker-compose")]
    else:
        message = "no compose client (apt-get install docker-compose); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=x\nMLFLOW_PASSWORD=y\nMLFLOW_SECRET_KEY=z\nMLFLOW_WORKER_PASSWORD=w\n")
    done = subprocess.run(client + ["--env-file", str(env), "-f", str(REPO / "docker-compose.yml"), "config",
                                    "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    for profiles in (["--profile", "sweep"], ["--profile", "gpu"]):  # each variant
        done = subprocess.run(client + ["--env-file", str(env), "-f", str(REPO / "docker-compose.yml"), *profiles,
                                        "config", "--quiet"], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, (profiles, done.stderr)
    remote = [*client, "--env-file", str(env), "-f", str(REPO / "docker-compose.yml"), "-f",
              str(REPO / "docker-compose.remote.yml"), "config"]
    missing_host = subprocess.run(remote + ["--quiet"], capture_output=True, text=True, cwd=REPO)
    assert missing_host.returncode != 0 and "CNNKERAS_PUBLISH_HOST" in missing_host.stderr  # no address, no ports
    env.write_text(env.read_text() + "CNNKERAS_PUBLISH_HOST=10.1.2.3\nMLFLOW_ALLOWED_HOSTS=tracking-host:5001\n")
    published = subprocess.run(remote, capture_output=True, text=True, cwd=REPO)
    assert published.returncode == 0, published.stderr
    resolved = yaml.safe_load(published.stdout)["services"]
    ports = {name: [str(p.get("host_ip", "")) if isinstance(p, dict) else p for p in s.get("ports", [])]
             for name, s in resolved.items() if s.get("ports")}
    assert set(ports) == {"postgres", "mlflow", "ui"}
    assert all("10.1.2.3" in str(port) for name in ("postgres", "mlflow") for port in ports[name]), ports
    assert "tracking-host:5001" in str(resolved["mlflow"]["environment"]["MLFLOW_ALLOWED_HOSTS"])
    empty = tmp_path / "empty.env"
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MLFLOW_"))}
    missing = subprocess.run(client + ["--env-file", str(empty), "-f", str(REPO / "docker-compose.yml"), "config",
                                       "--quiet"], capture_output=True, text=True, cwd=REPO, env=clean)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr  # no password, no stack
