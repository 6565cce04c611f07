"""From many runs to one champion, chosen on validation rows alone.

    make promote                                   # = python -m softmax_regression.commands.promote
    python -m softmax_regression.commands.promote --metric val_accuracy
    python -m softmax_regression.commands.promote --force   # even when the champion saw other validation data

Among the FINISHED, evaluated runs of the tracking experiment whose validation rows are the workspace's
`data/split/val.parquet` (the same md5, the digest of the run's "validation" dataset input), the best by
`--metric` is the candidate (ties: the earliest run). Its model is registered under
`tracking.registered_model` unless it already is, and the alias `champion` moves to it only when it is
strictly better than the champion on the same validation data. Test rows play no part.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softmax_regression.process import run_stage, text_table
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.errors import PipelineError
from softmax_regression.files import file_md5
from softmax_regression.tracking.lineage import repo_root
from softmax_regression.data.tables import parquet_rows

VAL = Path("data/split/val.parquet")
ALIAS = "champion"
METRICS = ("val_log_loss", "val_accuracy", "val_macro_f1")  # what runs may be chosen on
REPORTED = (*METRICS, "test_log_loss", "test_accuracy", "test_macro_f1")  # copied to a version's tags


class PromotionRefused(PipelineError):
    """The candidate cannot be compared with the champion, or there is nothing to choose from."""


@dataclass(frozen=True)
class Entry:
    """A run as promotion sees it."""

    run_id: str
    name: str  # the DVC experiment's name, else the run's
    start_time: int  # ms since the epoch: ties go to the earliest
    val_digest: str | None  # md5 of the validation rows it was evaluated on
    metrics: dict[str, float]
    version: str | None = None  # its model's version in the registry, if registered


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    refused: bool = False  # the two cannot be compared: nothing is registered or moved, and the exit is 1


def lower_is_better(metric: str) -> bool:
    return "loss" in metric


def best(entries: Sequence[Entry], metric: str) -> Entry | None:
    """The entry with the best `metric` (lowest loss, highest otherwise); ties go to the earliest run."""
    sign = 1 if lower_is_better(metric) else -1
    scored = [e for e in entries if metric in e.metrics]
    return min(scored, key=lambda e: (sign * e.metrics[metric], e.start_time), default=None)


def decide(candidate: Entry, champion: Entry | None, metric: str, force: bool = False) -> Decision:
    """Whether `champion` moves to `candidate`: refused when their validation data differ, unless `force`."""
    if champion is None:
        return Decision(True, "there is no champion yet")
    if champion.run_id == candidate.run_id:
        return Decision(False, "the candidate is the champion already")
    if champion.val_digest != candidate.val_digest:
        if force:
            return Decision(True, "--force: the champion was evaluated on other validation data, not compared")
        return Decision(False, f"refused: the champion (version {champion.version}) was evaluated on other "
                               f"validation data than the candidate, so their {metric} cannot be compared; "
                               f"re-run its experiment on this split, or pass --force to replace it anyway",
                        refused=True)
    if metric not in champion.metrics:
        return Decision(True, f"the champion has no {metric}")
    new, old = candidate.metrics[metric], champion.metrics[metric]
    better = new < old if lower_is_better(metric) else new > old
    sign = ("<" if better else ">=") if lower_is_better(metric) else (">" if better else "<=")
    verdict = "strictly better" if better else "not strictly better"
    return Decision(better, f"{metric} {new:.6g} {sign} {old:.6g}: {verdict}")


def render(candidate: Entry, champion: Entry | None, metric: str, decision: Decision) -> str:
    columns = ("", "version", "MLflow run id", "DVC experiment (or run name)", metric, "validation md5")
    rows = [(role, e.version or "-", e.run_id, e.name, f"{e.metrics.get(metric, float('nan')):.6f}",
             e.val_digest or "-") if e else (role, "-", "-", "-", "-", "-")
            for role, e in (("candidate", candidate), ("champion", champion))]
    outcome = f"champion -> version {candidate.version}" if decision.promote else "the champion stays"
    return f"{text_table(columns, rows)}\ndecision: {outcome} ({decision.reason})"


def workspace_val_digest(root: Path) -> str:
    """The md5 of the workspace's validation rows; refuses when there are none."""
    path = root / VAL
    if not path.exists():
        raise PromotionRefused(f"{VAL} not found: run the pipeline first (make run)")
    if parquet_rows(path) == 0:
        raise PromotionRefused("split.val_size is 0: there are no validation rows to choose a run on; set "
                               "split.val_size (0.2 is the default) and run `dvc repro`")
    return file_md5(path)


def candidates(experiment: str, val_digest: str) -> list[Entry]:
    """The experiment's FINISHED, evaluated training runs evaluated on these validation rows. A run that
    re-evaluated another's model (tag trained_by_run) is left out: its numbers are its model's run's."""
    from mlflow.tracking import MlflowClient

    from softmax_regression.tracking import runs as tracking

    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    query = f"attributes.status = 'FINISHED' and tags.{tracking.EVALUATED_TAG} = 'true'"
    entries, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], query, max_results=1000, page_token=token)
        entries += [entry(run) for run in page if "trained_by_run" not in run.data.tags]
        token = page.token
        if not token:
            break
    return [e for e in entries if e.val_digest == val_digest]


def entry(run: Any, version: str | None = None) -> Entry:
    from softmax_regression.tracking import runs as tracking

    return Entry(run.info.run_id, run.data.tags.get("dvc.exp_name") or run.info.run_name or "-",
                 run.info.start_time, tracking.dataset_digest(run, "validation"), dict(run.data.metrics), version)


def champion_of(name: str) -> Entry | None:
    """The version the alias points at, as an Entry of its run; None when there is none."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return entry(client.get_run(version.run_id), str(version.version))


def register(name: str, chosen: Entry) -> str:
    """The version of `chosen`'s model under `name`, registering it (with its lineage as tags) if need be."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(name, description="Softmax regression models chosen by `make promote`; "
                                                         "the alias `champion` is the one `make serve` serves")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{chosen.run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    run = client.get_run(chosen.run_id)
    tags = {"mlflow_run_id": chosen.run_id, "dvc_exp_name": run.data.tags.get("dvc.exp_name", ""),
            "git_commit": run.data.tags.get("mlflow.source.git.commit", ""),
            "data_md5": run.data.tags.get("dvc.raw_data_md5", ""), "val_data_md5": chosen.val_digest or ""}
    tags |= {key: repr(chosen.metrics[key]) for key in REPORTED if key in chosen.metrics}
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise PromotionRefused(f"run {chosen.run_id} logged no MLflow model to register")
    model_id = max(outputs, key=lambda output: output.step).model_id  # the train stage logs one
    version = client.create_model_version(name, f"models:/{model_id}", chosen.run_id, model_id=model_id,
                                          tags={k: v for k, v in tags.items() if v})
    return str(version.version)


def promote(metric: str = "val_log_loss", force: bool = False) -> tuple[Entry, Entry | None, Decision]:
    """Choose, register and (if the decision says so) move the alias; returns what was decided."""
    from mlflow.tracking import MlflowClient

    from softmax_regression.tracking import runs as tracking

    params = section(read_params(), "tracking", TrackingParams)
    root = repo_root()
    digest = workspace_val_digest(root)
    tracking.connect()
    chosen = best(candidates(params.experiment, digest), metric)
    if chosen is None:
        raise PromotionRefused(f"no FINISHED, evaluated run of experiment {params.experiment!r} has {metric} on "
                               f"these validation rows ({VAL}, md5 {digest}); run `dvc repro` first")
    champion = champion_of(params.registered_model)
    decision = decide(chosen, champion, metric, force)
    if decision.refused:
        return chosen, champion, decision
    chosen = dataclasses.replace(chosen, version=register(params.registered_model, chosen))
    if decision.promote:
        MlflowClient().set_registered_model_alias(params.registered_model, ALIAS, chosen.version)
    return chosen, champion, decision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m softmax_regression.commands.promote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", choices=METRICS, default="val_log_loss",
                        help="what to choose on (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace a champion evaluated on other validation data, without comparing")
    args = parser.parse_args(argv)
    chosen, champion, decision = promote(args.metric, args.force)
    print(render(chosen, champion, args.metric, decision))
    if decision.refused:
        raise PromotionRefused(decision.reason)


if __name__ == "__main__":
    run_stage(main)
