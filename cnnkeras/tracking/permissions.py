"""Who may write to an experiment on an MLflow server with logins (``--app-name basic-auth``).

A team shares one server: whoever creates an experiment (the first sweep of a study) owns
it (MANAGE); every other user gets the server's ``default_permission``, READ by default, and
their writes are refused (HTTP 403). :func:`grant` is how an owner or an admin lets a
colleague run sweeps there (``cnnkeras grant USER EXPERIMENT``): MLflow's own
authorization API, logged in as ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

from typing import Any

from ..errors import TrackingError
from ..lazy import lazy_import
from .connection import check_tracking
from .mlflow_tracker import default_tracking_uri, get_client, server_errors
from .values import redact

mlflow_server = lazy_import("mlflow.server")
mlflow_exceptions = lazy_import("mlflow.exceptions")

__all__ = ["PERMISSIONS", "grant"]

#: MLflow's experiment permissions, least to most.
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def grant(user: str, experiment: str, *, permission: str = "EDIT", uri: str | None = None) -> str:
    """Give ``user`` ``permission`` on ``experiment`` (by name); returns what was done, for people."""
    permission = permission.upper()
    if permission not in PERMISSIONS:
        raise TrackingError(f"permission {permission!r} is not one of {', '.join(PERMISSIONS)}")
    uri = default_tracking_uri(uri)
    if not uri.startswith(("http://", "https://")):
        raise TrackingError(f"{redact(uri)} is a local store: it has no users to grant anything to (permissions "
                            "exist on an mlflow server started with --app-name basic-auth)")
    check_tracking(uri)
    with server_errors(uri):
        found = get_client(uri).get_experiment_by_name(experiment)
        if found is None:
            raise TrackingError(f"no experiment {experiment!r} on {redact(uri)} (it is created by its first run)")
        auth = mlflow_server.get_app_client("basic-auth", tracking_uri=uri)
        try:
            done = _set_experiment_permission(auth, found.experiment_id, user, permission)
        except mlflow_exceptions.RestException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise TrackingError(f"no user {user!r} on {redact(uri)}: an admin creates users first") from None
            raise
    return f"{user} {done} {permission} on experiment {experiment} ({redact(uri)})"


def _set_experiment_permission(auth: Any, experiment_id: str, user: str, permission: str) -> str:
    """Set one user's permission on one experiment with whichever client API this MLflow has.

    MLflow 3.17.0/3.17.1 have ``create_experiment_permission`` (refused when one exists) and
    ``update_experiment_permission``; 3.17.2 replaced both with ``grant_user_permission(user,
    resource_type, resource_id, permission)``, which sets or replaces. Returns "granted" or
    "changed to", for people.
    """
    if hasattr(auth, "grant_user_permission"):
        auth.grant_user_permission(user, "experiment", str(experiment_id), permission)
        return "granted"
    try:
        auth.create_experiment_permission(experiment_id, user, permission)
        return "granted"
    except mlflow_exceptions.RestException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    auth.update_experiment_permission(experiment_id, user, permission)
    return "changed to"
