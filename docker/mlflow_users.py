"""Create the sweep workers' MLflow user, once (docker-compose.yml's one-shot ``mlflow-users``).

Workers log in as their own user, not as the admin: they create the experiments of their sweeps
(and own them); a person is given access with ``cnnkeras grant``. Idempotent: an existing user
keeps its password. Reads MLFLOW_URL, MLFLOW_ADMIN_USERNAME/PASSWORD, MLFLOW_WORKER_USERNAME/PASSWORD.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = os.environ["MLFLOW_URL"].rstrip("/")
    admin = (os.environ.get("MLFLOW_ADMIN_USERNAME", "admin"), os.environ["MLFLOW_ADMIN_PASSWORD"])
    user, password = os.environ["MLFLOW_WORKER_USERNAME"], os.environ["MLFLOW_WORKER_PASSWORD"]
    login = base64.b64encode(f"{admin[0]}:{admin[1]}".encode()).decode()
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/users/create", method="POST",
                                     data=json.dumps({"username": user, "password": password}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {login}"})
    try:
        with urllib.request.urlopen(request, timeout=30):
            print(f"created MLflow user {user}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        if exc.code == 400 and "already exists" in body.lower() or "RESOURCE_ALREADY_EXISTS" in body:
            print(f"MLflow user {user} exists")
            return 0
        print(f"could not create MLflow user {user}: HTTP {exc.code} {body[:200]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
