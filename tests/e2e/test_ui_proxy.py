"""The MLflow UI that ``cnnkeras ui`` starts on a local store has no logins: through its proxy, reads
pass (including the POST searches the UI reads with) and every write is refused (issue 25)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import cnnkeras
from cnnkeras.tracking import Tracker

from .conftest import free_ports

pytestmark = pytest.mark.slow  # starts an mlflow server


def _post(url: str, body: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_local_mlflow_ui_is_read_only_through_the_landing_port(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = Tracker(uri=uri, experiment="kept", run_name="r")
    run.end("FINISHED")
    base = free_ports(4)
    running = cnnkeras.api.ui(root=tmp_path, uri=uri, port=base, reports=tmp_path / "reports", wait=False)
    try:
        running.wait_ready()
        api = f"http://127.0.0.1:{base}/mlflow/ajax-api/2.0/mlflow"
        assert _post(f"{api}/runs/search", {"experiment_ids": [run.experiment_id]}) == 200
        assert _post(f"{api}/experiments/search", {"max_results": 10}) == 200
        for path, body in (("experiments/create", {"name": "intruder"}),
                           ("experiments/delete", {"experiment_id": run.experiment_id}),
                           ("runs/delete", {"run_id": run.run_id}),
                           ("runs/set-tag", {"run_id": run.run_id, "key": "x", "value": "y"})):
            assert _post(f"{api}/{path}", body) == 403, path
        assert run.client.get_experiment(run.experiment_id).lifecycle_stage == "active"
        assert run.client.get_run(run.run_id).info.lifecycle_stage == "active"
        assert run.client.get_experiment_by_name("intruder") is None
    finally:
        running.stop()
