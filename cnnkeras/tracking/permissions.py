"""Who may write to an experiment on an MLflow server with logins (``--app-name basic-auth``).

A team shares one server: whoever creates an experiment (the first sweep of a study) owns
it (MANAGE); every other user gets the server's ``default_permission``, READ by default, and
their writes are refused (HTTP 403). :func:`grant` is how an owner or an admin lets a
colleague run sweeps there (``cnnkeras grant USER EXPERIMENT``): MLflow's own
authorization API, logged in as ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

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
            auth.create_experiment_permission(found.experiment_id, user, permission)
            done = "granted"
        except mlflow_exceptions.RestException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                auth.update_experiment_permission(found.experiment_id, user, permission)
                done = "changed to"
            elif exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise TrackingError(f"no user {user!r} on {redact(uri)}: an admin creates users first") from None
            else:
                raise
    return f"{user} {done} {permission} on experiment {experiment} ({redact(uri)})"
