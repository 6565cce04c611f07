"""Typed, frozen params per section of params.yaml, validated before any work starts.

A misspelt or missing key fails loudly, naming the key, what is allowed and what was given. A choice is a
`Literal` type: the one list of its names (the trainers' dicts are tested to match them).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from softmax_regression.errors import ParamError

PARAMS_FILE = "params.yaml"

Impl = Literal["autograd", "manual", "nn"]  # how gradients are computed: trainers.IMPLEMENTATIONS
Optimizer = Literal["gd", "lbfgs", "sgd"]  # how they are used: trainers.OPTIMIZERS
Dtype = Literal["float32", "float64"]
ValMetric = Literal["val_accuracy", "val_log_loss", "val_macro_f1"]  # what runs are chosen on: validation rows
Device = Literal["auto", "cpu", "cuda"]  # auto: cuda when there is one


@dataclass(frozen=True)
class IngestParams:
    path: str  # the raw CSV
    label: str  # the column holding the class of each row
    drop: tuple[str, ...] = ()  # columns that are neither label nor feature (ids, free text)
    delimiter: str = ","
    missing: str = "error"  # rows with a missing value: "error" names them, "drop" drops them

    def __post_init__(self) -> None:
        _require(self.path != "", "ingest.path", "a file path", self.path)
        _require(self.label != "", "ingest.label", "a column name", self.label)
        _require(len(self.delimiter) == 1, "ingest.delimiter", "a single character", self.delimiter)
        _require(self.missing in ("drop", "error"), "ingest.missing", "one of ['drop', 'error']", self.missing)
        _require(self.label not in self.drop, "ingest.drop", f"columns other than the label {self.label!r}",
                 list(self.drop))


@dataclass(frozen=True)
class SplitParams:
    test_size: float  # fraction of each class held out for the final report (evaluate)
    seed: int
    val_size: float = 0.2  # fraction of each class held out to compare runs and choose one; 0: none

    def __post_init__(self) -> None:
        _require(0 < self.test_size < 1, "split.test_size", "a fraction in (0, 1)", self.test_size)
        _require(0 <= self.val_size < 1, "split.val_size", "a fraction in [0, 1)", self.val_size)
        _require(self.test_size + self.val_size < 1, "split.val_size",
                 f"less than 1 - split.test_size = {1 - self.test_size:g}, to leave rows to train on", self.val_size)


@dataclass(frozen=True)
class TrainParams:
    impl: Impl  # how gradients are computed
    iterations: int  # at most this many steps (gd, lbfgs) or epochs (sgd)
    lr: float  # step size of gd and sgd; lbfgs chooses its own by line search
    l2: float  # weight of the L2 penalty l2·ΣW² (the bias is not penalised)
    seed: int  # draws the initial weights and sgd's shuffles
    optimizer: Optimizer = "gd"  # how gradients are used
    standardize: bool = True  # scale features with train-set mean and standard deviation
    batch_size: int = 64  # rows per sgd step
    momentum: float = 0.0  # gd and sgd: v ← momentum·v + gradient
    tol: float = 0.0  # stop early: gd/lbfgs once every gradient component is within tol, sgd once J
    #                   changes by at most tol (relative) over an epoch; 0 runs every iteration
    eval_every: int = 10  # log-loss on train and validation rows every this many iterations; 0: never
    dtype: Dtype = "float32"
    device: Device = "cpu"
    world_size: int = 1  # processes training together, each on its shard of the rows (torch.distributed)

    def __post_init__(self) -> None:
        _check_choices(self, "train")
        _require(self.iterations >= 1, "train.iterations", "an integer >= 1", self.iterations)
        _require(math.isfinite(self.lr) and self.lr > 0, "train.lr", "a number > 0", self.lr)
        _require(math.isfinite(self.l2) and self.l2 >= 0, "train.l2", "a number >= 0", self.l2)
        _require(self.batch_size >= 1, "train.batch_size", "an integer >= 1", self.batch_size)
        _require(0 <= self.momentum < 1, "train.momentum", "a number in [0, 1)", self.momentum)
        _require(math.isfinite(self.tol) and self.tol >= 0, "train.tol", "a number >= 0", self.tol)
        _require(self.eval_every >= 0, "train.eval_every", "an integer >= 0", self.eval_every)
        _require(self.world_size >= 1, "train.world_size", "an integer >= 1", self.world_size)

    def check_world_size(self, rows: int) -> None:
        """Every rank needs training rows of its own: world_size against the `rows` there are to train on."""
        if self.world_size > rows:
            raise ParamError(f"train.world_size is {self.world_size}, more than the {rows} training rows; "
                             f"every rank needs rows of its own")


@dataclass(frozen=True)
class TuneParams:
    """`make tune`'s search (search.space and search.study say how each is used)."""

    study: str  # the study's name: its storage, its runs and its winners' DVC experiments carry it
    seed: int  # with the space and the data, what the sequence of trials follows from
    trials: int  # the study's total of finished trials
    space: dict  # train.* key -> {low, high[, log, step]} (a range) or a list of choices
    parallel: int = 1  # trials in flight at once on this machine
    metric: ValMetric = "val_log_loss"  # minimised when a loss, maximised otherwise

    def __post_init__(self) -> None:
        _check_choices(self, "tune")
        _require(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.study) is not None, "tune.study",
                 "a name of letters, digits, '.', '_' and '-' (it names DVC experiments)", self.study)
        _require(self.trials >= 1, "tune.trials", "an integer >= 1", self.trials)
        _require(self.parallel >= 1, "tune.parallel", "an integer >= 1", self.parallel)
        _require(len(self.space) >= 1, "tune.space", "at least one train.* key to search", self.space)


def lower_is_better(metric: str) -> bool:
    return "loss" in metric


@dataclass(frozen=True)
class TrackingParams:
    experiment: str = "softmax-regression"  # the MLflow experiment every run goes into
    registered_model: str = "softmax-regression"  # the Model Registry name `make promote` registers under

    def __post_init__(self) -> None:
        _require(self.experiment != "", "tracking.experiment", "a name", self.experiment)
        _require(self.registered_model != "", "tracking.registered_model", "a name", self.registered_model)


Section = TypeVar("Section")


def read_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file as a dict; a missing or malformed file is a ParamError."""
    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamError("file not found (run from the repository root)", file=str(path)) from None
    except yaml.YAMLError as e:
        raise ParamError(f"not valid YAML: {' '.join(str(e).split())}", file=str(path)) from None
    if not isinstance(params, dict):
        raise ParamError(f"expected a mapping of sections, got {type(params).__name__}", file=str(path))
    return params


def section(params: Mapping[str, Any], name: str, cls: type[Section]) -> Section:
    """Build the dataclass `cls` from params[name], checking keys and types."""
    values = params.get(name)
    if not isinstance(values, Mapping):
        raise ParamError(f"section '{name}' is missing or not a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(f"unknown key {name}.{unknown[0]} (known keys: {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, field in fields.items():
        if key not in values:
            if field.default is dataclasses.MISSING:
                raise ParamError(f"missing key {name}.{key}")
            continue
        kwargs[key] = _coerce(values[key], hints[key], f"{name}.{key}")
    return cls(**kwargs)


RUN_SECTIONS = ("ingest", "split", "train", "tracking")  # what the train stage reads: an MLflow run's params


def run_params(params: Mapping[str, Any], train: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat params an MLflow run of training holds: the sections the train stage reads (with `train`'s
    values in place of params.yaml's, for a trial of `make tune`)."""
    sections = {name: params[name] for name in RUN_SECTIONS if name in params}
    if train is not None:
        sections["train"] = {**sections["train"], **train}
    return flatten(sections)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}: the names MLflow logs params under."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _coerce(value: Any, hint: Any, key: str) -> Any:
    if typing.get_origin(hint) is tuple:
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str):
                raise ParamError(f"{key} must be a list of column names, got {value!r}")
        return tuple(items)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot), as `dvc exp run -S` writes it, as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str or typing.get_origin(hint) is Literal:  # a choice is checked by the dataclass itself
        ok = isinstance(value, str)
    elif hint is dict:
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    else:  # pragma: no cover - a field type this module does not know
        raise TypeError(f"unsupported param type {hint!r} for {key}")
    if not ok:
        raise ParamError(f"{key} must be {_type_name(hint)}, got {value!r}")
    return value


def choices(hint: Any) -> list[str]:
    """The names a Literal type allows, sorted."""
    return sorted(typing.get_args(hint))


def _check_choices(params: Any, section_name: str) -> None:
    for name, hint in typing.get_type_hints(type(params)).items():
        if typing.get_origin(hint) is Literal:
            value = getattr(params, name)
            _require(value in typing.get_args(hint), f"{section_name}.{name}", f"one of {choices(hint)}", value)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return f"one of {choices(hint)}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}[hint]


def _require(ok: bool, key: str, allowed: str, got: Any) -> None:
    if not ok:
        raise ParamError(f"{key} must be {allowed}, got {got!r}")
