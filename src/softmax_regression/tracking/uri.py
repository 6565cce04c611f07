"""Where MLflow runs go, and whether a tracking server there answers, without importing MLflow: a stage asks
before it spends seconds importing torch and MLflow, so that a server that is down fails it at once.
`runs.connect()` asks again as it points MLflow there."""

from __future__ import annotations

import os

from softmax_regression.errors import TrackingError
from softmax_regression.paths import STORE, repo_root


def tracking_uri() -> str:
    """The user's MLFLOW_TRACKING_URI, else the repository's own store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / STORE}"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server that cannot be reached is one clear error, before any work is done."""
    if not is_server(uri):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as e:
        reason = type(e).__name__ if not str(e) else " ".join(str(e).split())[:200]
        raise TrackingError(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) cannot be reached: {reason}; "
                            f"start it, or unset MLFLOW_TRACKING_URI to use the local store") from None
