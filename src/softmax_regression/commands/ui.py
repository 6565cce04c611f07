"""The MLflow UI on this project's runs: `make ui` (= python -m softmax_regression.commands.ui).

Prints the address that opens the experiment on its runs table, in MLflow's "Model training" view, sorted
by validation log-loss (best first), then serves the local store there. With MLFLOW_TRACKING_URI set to a
server, that server already has a UI: the address on it is printed, and nothing is started.
"""

from __future__ import annotations

import os
import sys

from softmax_regression.process import run_stage, server_arguments
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.errors import TrackingError

# The runs table in the "Model training" view (without workflowType, MLflow 3.17 opens an experiment on its
# GenAI overview), best validation log-loss first; compareRunsMode=CHART is the chart view of the same runs.
RUNS_PAGE = "{base}/#/experiments/{id}/runs?workflowType=machine_learning&orderByKey=metrics.%60val_log_loss%60" \
            "&orderByAsc=true"


def runs_page(base: str, experiment_id: str) -> str:
    return RUNS_PAGE.format(base=base.rstrip("/"), id=experiment_id)


def main(argv: list[str] | None = None) -> None:
    args = server_arguments("ui", __doc__, 5000, argv)
    experiment = section(read_params(), "tracking", TrackingParams).experiment
    from softmax_regression.tracking import runs as tracking  # mlflow: seconds

    uri = tracking.connect()
    server = uri.startswith(("http://", "https://"))
    if not server and not os.path.exists(uri.removeprefix("sqlite:///")):
        raise TrackingError(f"no MLflow store at {uri} yet: run the pipeline first (make run)")
    experiment_id = tracking.experiment_id(experiment)  # also tags an older store's experiment for the view
    base = uri if server else f"http://{args.host}:{args.port}"
    print(f"ui: the runs of {experiment!r}: {runs_page(base, experiment_id)}", file=sys.stderr, flush=True)
    if server:
        return
    # One server process: MLflow's default of four, each importing MLflow, is for a shared server. And no
    # job runner: MLflow 3 starts one with seven task consumers beside the server, for GenAI scorers and
    # trace jobs these runs never use (a user's MLFLOW_SERVER_ENABLE_JOB_EXECUTION wins).
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port),
               "--workers", "1"]
    os.execvp(command[0], command)


if __name__ == "__main__":
    run_stage(main)
