"""The search space of params.yaml's `tune.space`: each train.* key a range or a list of choices, as Optuna
distributions, every value one train.* can take.

    tune:
      space:
        train.lr: {low: 0.01, high: 1.0, log: true}     # a range of the key's type (float here)
        train.iterations: {low: 100, high: 1000, step: 100}
        train.optimizer: [gd, lbfgs]                   # choices
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from softmax_regression.config import TrainParams, section
from softmax_regression.errors import ParamError

FIELDS = {field.name for field in dataclasses.fields(TrainParams)} - {"world_size"}  # a trial runs in one process
RANGE_KEYS = {"low", "high", "log", "step"}


def parse(space: Mapping[str, Any], train: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """The distributions of `space`, checked against `train` (params.yaml's train section): every key a field
    of it, every bound and choice a value it can take. A problem is a ParamError naming tune.space.<key>."""
    hints = typing.get_type_hints(TrainParams)
    distributions = {}
    for key, value in space.items():
        where = f"tune.space.{key}"
        field = key.removeprefix("train.")
        if not key.startswith("train.") or field not in FIELDS:
            raise ParamError(f"{where}: not a key that can be searched; these can: {sorted(f'train.{f}' for f in FIELDS)}")
        if isinstance(value, list):
            if not value:
                raise ParamError(f"{where}: a list of choices needs one choice at least")
            points = value
            distributions[key] = CategoricalDistribution(value)
        elif isinstance(value, Mapping) and {"low", "high"} <= set(value) <= RANGE_KEYS:
            distributions[key] = _range(where, hints[field], value)
            points = [value["low"], value["high"]]
        else:
            raise ParamError(f"{where}: expected {{low: …, high: …}} (with log: true or step: … if wanted) or a list of "
                             f"choices, got {value!r}")
        for point in points:
            try:
                section({"train": {**train, field: point}}, "train", TrainParams)
            except ParamError as e:
                raise ParamError(f"{where}: {point!r} is not a value it can take: {e.problem}") from None
    return distributions


def _range(where: str, hint: Any, value: Mapping[str, Any]) -> BaseDistribution:
    low, high, log, step = value["low"], value["high"], value.get("log", False), value.get("step")
    if hint not in (int, float):
        raise ParamError(f"{where}: a range needs a numeric key; give a list of choices")
    numbers = [low, high] + ([step] if step is not None else [])
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers) or not isinstance(log, bool):
        raise ParamError(f"{where}: low, high and step must be numbers and log true or false, got {dict(value)!r}")
    if not low < high:
        raise ParamError(f"{where}: low must be below high, got low {low!r} and high {high!r}")
    if log and (low <= 0 or step is not None):
        raise ParamError(f"{where}: a log range needs low > 0 and no step")
    if hint is int:
        if not all(isinstance(n, int) for n in numbers):
            raise ParamError(f"{where}: {where.removeprefix('tune.space.')} is an integer: low, high and step must be too")
        return IntDistribution(low, high, log=log, step=step or 1)
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def describe(distributions: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """The space as text, key by key: what the study records, and compares when it is resumed."""
    return {key: distribution_to_json(distribution) for key, distribution in sorted(distributions.items())}
