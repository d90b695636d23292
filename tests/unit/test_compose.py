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
    assert {"postgres", "mlflow", "worker", "gpu-worker-0", "gpu-worker-1", "ui"} <= set(SERVICES)
    for name in ("postgres", "mlflow", "ui"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert SERVICES["worker"]["restart"] == "on-failure"
    assert SERVICES["worker"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    assert "/mlflow/health" in " ".join(SERVICES["mlflow"]["healthcheck"]["test"])


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


def test_only_the_landing_page_is_published_and_only_on_loopback():
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert list(published) == ["ui"]
    assert all(port.startswith("127.0.0.1:") for port in published["ui"])


def test_gpu_workers_use_jax_and_reserve_one_gpu_each():
    seen = []
    for name in ("gpu-worker-0", "gpu-worker-1"):
        service = SERVICES[name]
        assert service["build"]["dockerfile"] == "Dockerfile.gpu" and service["profiles"] == ["gpu"]
        assert service["environment"]["KERAS_BACKEND"] == "jax"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and len(device["device_ids"]) == 1
        seen += device["device_ids"]
    assert len(set(seen)) == len(seen)  # never two workers on one GPU
    assert "jax[cuda12]" in (REPO / "Dockerfile.gpu").read_text()


def test_no_literal_secrets_and_every_variable_documented():
    documented = env_example()
    for text in strings(COMPOSE):
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            assert match.group(1).startswith("${") or match.group(1).startswith("$${"), text
        for variable in VARIABLE.findall(text):
            assert variable in documented, f"{variable} is used by docker-compose.yml but not in .env.example"
    for key in ("POSTGRES_PASSWORD", "MLFLOW_PASSWORD", "MLFLOW_SECRET_KEY"):
        assert documented[key] == "", f"{key} must be empty in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    assert "OPTUNA_STORAGE" not in (REPO / "docker-compose.yml").read_text()  # read by nothing


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
    env.write_text("POSTGRES_PASSWORD=x\nMLFLOW_PASSWORD=y\nMLFLOW_SECRET_KEY=z\n")
    done = subprocess.run(client + ["--env-file", str(env), "-f", str(REPO / "docker-compose.yml"), "config",
                                    "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MLFLOW_"))}
    missing = subprocess.run(client + ["--env-file", str(empty), "-f", str(REPO / "docker-compose.yml"), "config",
                                       "--quiet"], capture_output=True, text=True, cwd=REPO, env=clean)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr  # no password, no stack
