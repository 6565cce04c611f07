"""From many runs to one champion, chosen on validation rows alone.

    make promote                                   # = python -m softmax_regression.commands.promote
    make promote ARGS='--metric val_accuracy'
    make promote ARGS=--force                      # even when the champion saw other validation data

Among the FINISHED, evaluated runs of the tracking experiment whose validation rows are the workspace's
`data/split/val.parquet` (the same md5, the digest of the run's "validation" dataset input), the best by
`--metric` is the candidate (ties: the earliest run). Its model is registered under
`tracking.registered_model` unless it already is, and the alias `champion` moves to it only when it is
strictly better than the champion on the same validation data. Test rows play no part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from softmax_regression import paths
from softmax_regression.commands.console import parser, text_table
from softmax_regression.config import (
    TrackingParams,
    ValMetric,
    choices,
    lower_is_better,
    read_params,
    section,
)
from softmax_regression.data.tables import parquet_rows
from softmax_regression.errors import PipelineError
from softmax_regression.files import file_md5
from softmax_regression.process import run_main
from softmax_regression.tracking import names

METRICS = choices(ValMetric)  # what runs may be chosen on
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


def render(candidate: Entry, champion: Entry | None, metric: str) -> str:
    columns = ("", "version", "MLflow run id", "DVC experiment (or run name)", metric, "validation md5")
    rows = [(role, e.version or "-", e.run_id, e.name, f"{e.metrics.get(metric, float('nan')):.6f}",
             e.val_digest or "-") if e else (role, "-", "-", "-", "-", "-")
            for role, e in (("candidate", candidate), ("champion", champion))]
    return text_table(columns, rows)


def outcome(candidate: Entry, decision: Decision) -> str:
    """The decision line below the table (a refusal is the command's error line instead)."""
    moved = f"champion -> version {candidate.version}" if decision.promote else "the champion stays"
    return f"decision: {moved} ({decision.reason})"


def workspace_val_digest() -> str:
    """The md5 of the workspace's validation rows; refuses when there are none."""
    path = paths.repo_root() / paths.VAL
    if not path.exists():
        raise PromotionRefused(f"{paths.VAL} not found: run the pipeline first (make run)")
    if parquet_rows(path) == 0:
        raise PromotionRefused("split.val_size is 0: there are no validation rows to choose a run on; set "
                               "split.val_size (0.2 is the default) and run `dvc repro`")
    return file_md5(path)


def entry(run: Any, version: str | None = None) -> Entry:
    from softmax_regression.tracking import runs

    return Entry(run.info.run_id, run.data.tags.get(names.EXP_NAME) or run.info.run_name or "-",
                 run.info.start_time, runs.dataset_digest(run, names.VALIDATION), dict(run.data.metrics), version)


def candidates(experiment: str, val_digest: str) -> list[Entry]:
    """The experiment's FINISHED, evaluated training runs evaluated on these validation rows. A run that
    re-evaluated another's model (tag trained_by_run) is left out: its numbers are its model's run's."""
    from softmax_regression.tracking import runs

    query = f"attributes.status = 'FINISHED' and tags.{names.EVALUATED} = 'true'"
    found = [entry(run) for run in runs.search(experiment, query) if names.TRAINED_BY_RUN not in run.data.tags]
    return [e for e in found if e.val_digest == val_digest]


def champion_of(name: str) -> Entry | None:
    from softmax_regression.tracking import registry

    found = registry.champion(name)
    return None if found is None else entry(found[1], found[0])


def register(name: str, chosen: Entry) -> str:
    """The version of `chosen`'s model under `name`, registering it, with its lineage as tags, if need be."""
    from softmax_regression.tracking import registry, runs

    run = runs.find_run(chosen.run_id)
    tags = {"mlflow_run_id": chosen.run_id, "dvc_exp_name": run.data.tags.get(names.EXP_NAME, ""),
            "git_commit": run.data.tags.get(names.GIT_COMMIT, ""),
            "data_md5": run.data.tags.get(names.RAW_DATA_MD5, ""), "val_data_md5": chosen.val_digest or ""}
    tags |= {key: repr(chosen.metrics[key]) for key in REPORTED if key in chosen.metrics}
    try:
        return registry.version_of(name, run, tags)
    except ValueError as e:
        raise PromotionRefused(str(e)) from None


def promote(metric: str = "val_log_loss", force: bool = False) -> tuple[Entry, Entry | None, Decision]:
    """Choose, register and (if the decision says so) move the alias; returns what was decided."""
    from softmax_regression.tracking import registry, runs

    params = section(read_params(), "tracking", TrackingParams)
    digest = workspace_val_digest()
    runs.connect()
    chosen = best(candidates(params.experiment, digest), metric)
    if chosen is None:
        raise PromotionRefused(f"no FINISHED, evaluated run of experiment {params.experiment!r} has {metric} on "
                               f"these validation rows ({paths.VAL}, md5 {digest}); run `dvc repro` first")
    champion = champion_of(params.registered_model)
    decision = decide(chosen, champion, metric, force)
    if decision.refused:
        return chosen, champion, decision
    chosen = dataclasses.replace(chosen, version=register(params.registered_model, chosen))
    if decision.promote:
        registry.make_champion(params.registered_model, chosen.version)
    return chosen, champion, decision


def main(argv: list[str] | None = None) -> None:
    arguments = parser("promote", __doc__)
    arguments.add_argument("--metric", choices=METRICS, default="val_log_loss",
                           help="what to choose on (default: %(default)s)")
    arguments.add_argument("--force", action="store_true",
                           help="replace a champion evaluated on other validation data, without comparing")
    args = arguments.parse_args(argv)
    chosen, champion, decision = promote(args.metric, args.force)
    print(render(chosen, champion, args.metric))
    if decision.refused:
        raise PromotionRefused(decision.reason)
    print(outcome(chosen, decision))


if __name__ == "__main__":
    run_main(main)
