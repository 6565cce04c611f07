"""The MLflow Model Registry: the versions of a registered model, and the alias `champion`.

Every call runs with Ctrl-C and SIGTERM deferred (`interrupts`), as in `runs`.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from softmax_regression import interrupts
from softmax_regression.tracking.names import ALIAS

DESCRIPTION = "Softmax regression models chosen by `make promote`; the alias `champion` is the one `make serve` serves"


@interrupts.deferred()
def champion(name: str) -> tuple[str, Run] | None:
    """(version, its run) that the alias points at; None when there is none."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return str(version.version), client.get_run(version.run_id)


@interrupts.deferred()
def version_of(name: str, run: Run, tags: Mapping[str, str]) -> str:
    """The version of the run's MLflow model under `name`: the first registered from that run, else a new
    one with `tags`. Refuses (ValueError) a run that logged no model."""
    client = MlflowClient()
    try:
        client.create_registered_model(name, description=DESCRIPTION)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise ValueError(f"run {run.info.run_id} logged no MLflow model to register")
    model_id = max(outputs, key=lambda output: output.step).model_id  # the train stage logs one
    version = client.create_model_version(name, f"models:/{model_id}", run.info.run_id, model_id=model_id,
                                          tags={k: v for k, v in tags.items() if v})
    return str(version.version)


@interrupts.deferred()
def make_champion(name: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, ALIAS, version)
