"""The MLflow UI on this project's runs: `make ui` (= python -m softmax_regression.commands.ui).

Prints the address that opens the experiment on its runs table, in MLflow's "Model training" view: the runs
evaluated on the workspace's validation rows (the same md5 as `data/split/val.parquet`), whose numbers can be
compared, best validation log-loss first. Then it serves the local store there, until Ctrl-C. With
MLFLOW_TRACKING_URI set to a server, that server already has a UI: the address on it is printed, and nothing
is started.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

from softmax_regression import paths
from softmax_regression.commands.console import run_server, server_arguments
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.data.tables import parquet_rows
from softmax_regression.errors import TrackingError
from softmax_regression.files import file_md5
from softmax_regression.process import run_main

# The runs table in the "Model training" view (without workflowType, MLflow 3.17 opens an experiment on its
# GenAI overview), best validation log-loss first; compareRunsMode=CHART is the chart view of the same runs.
RUNS_PAGE = "{base}/#/experiments/{id}/runs?workflowType=machine_learning&orderByKey=metrics.%60val_log_loss%60" \
            "&orderByAsc=true"


def runs_page(base: str, experiment_id: str, val_digest: str | None = None) -> str:
    """The runs table; with `val_digest`, only the runs whose dataset inputs include those validation rows."""
    page = RUNS_PAGE.format(base=base.rstrip("/"), id=experiment_id)
    return page if val_digest is None else f"{page}&searchFilter={quote(f'datasets.digest = {val_digest!r}')}"


def run_page(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def ui_base(uri: str) -> str:
    """Where the UI of the runs at `uri` is: the tracking server's own, else `make ui`'s."""
    from softmax_regression.tracking.uri import is_server

    return uri if is_server(uri) else "http://127.0.0.1:5000"


def workspace_val_digest() -> str | None:
    """The md5 of the workspace's validation rows, if there are any."""
    path = paths.repo_root() / paths.VAL
    return file_md5(path) if path.exists() and parquet_rows(path) else None


def main(argv: list[str] | None = None) -> None:
    args = server_arguments("ui", __doc__, 5000, argv)
    experiment = section(read_params(), "tracking", TrackingParams).experiment
    from softmax_regression.tracking import runs  # mlflow: seconds
    from softmax_regression.tracking.uri import is_server

    uri = runs.connect()
    server = is_server(uri)
    if not server and not os.path.exists(uri.removeprefix("sqlite:///")):
        raise TrackingError(f"no MLflow store at {uri} yet: run the pipeline first (make run)")
    digest = workspace_val_digest()
    base = uri if server else f"http://{args.host}:{args.port}"
    rows = "evaluated on the workspace's validation rows" if digest else "(the workspace has no validation rows)"
    print(f"ui: the runs of {experiment!r} {rows}, best val_log_loss first: "
          f"{runs_page(base, runs.experiment_id(experiment), digest)}", file=sys.stderr, flush=True)
    if server:
        return
    # One server process: MLflow's default of four, each importing MLflow, is for a shared server. And no
    # job runner: MLflow 3 starts one with seven task consumers beside the server, for GenAI scorers and
    # trace jobs these runs never use (a user's MLFLOW_SERVER_ENABLE_JOB_EXECUTION wins).
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    run_server("ui", ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port),
                      "--workers", "1"])


if __name__ == "__main__":
    run_main(main)
