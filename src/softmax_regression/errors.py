"""Expected failures: each carries one line for the user, and a stage exits with it and no traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure the user can fix: bad params, bad data, a diverging run."""


class ParamError(PipelineError):
    """A value in params.yaml is missing, misspelt, of the wrong type or out of range. The message names
    the key; the file is prefixed here."""

    def __init__(self, message: str, file: str = "params.yaml") -> None:
        super().__init__(f"{file}: {message}")
        self.problem = message


class DataError(PipelineError):
    """The input data cannot be used as it is."""


class TrainingDiverged(PipelineError):
    """The loss stopped being finite during training."""


class TrackingError(PipelineError):
    """The MLflow tracking store or server cannot be used."""


def missing_features(features: list[str], columns: list[str]) -> str | None:
    """What to say when some of a model's feature columns are not among `columns`; None when all are."""
    missing = [c for c in features if c not in columns]
    if not missing:
        return None
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"feature column {missing[0]!r} of the model is missing{more}; columns are: {', '.join(columns)}"
