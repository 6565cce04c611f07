"""Serve the champion, `models:/<tracking.registered_model>@champion`, over HTTP with MLflow's scoring server,
until Ctrl-C.

    make serve                                     # = python -m softmax_regression.commands.serve
    make serve PORT=5002

POST a table of named feature columns to /invocations; the answer is each row's class and
probabilities:

    curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{"dataframe_split":
      {"columns": ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"], "data": [[5.1, 3.5, 1.4, 0.2]]}}'
"""

from __future__ import annotations

import sys

from softmax_regression.commands.console import run_server, server_arguments
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.errors import PipelineError
from softmax_regression.process import run_main
from softmax_regression.tracking.names import ALIAS


def main(argv: list[str] | None = None) -> None:
    args = server_arguments("serve", __doc__, 5001, argv)
    name = section(read_params(), "tracking", TrackingParams).registered_model
    from softmax_regression.tracking import registry, runs  # mlflow: seconds

    uri = runs.connect()  # exported as MLFLOW_TRACKING_URI, for the server to find the model by
    champion = registry.champion(name)
    if champion is None:
        raise PipelineError(f"no champion among the registered versions of {name!r} in {uri}: run `make promote` "
                            f"first")
    version, run = champion
    print(f"serve: {name} version {version} (MLflow run {run.info.run_id}) at "
          f"http://{args.host}:{args.port}/invocations", file=sys.stderr, flush=True)
    run_server("serve", ["mlflow", "models", "serve", "-m", f"models:/{name}@{ALIAS}", "--env-manager", "local",
                         "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    run_main(main)
