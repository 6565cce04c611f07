"""Expected failures: each carries one line for the user, and a stage exits with it and no traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure the user can fix: bad params, bad data, a diverging run."""


class ParamError(PipelineError):
    """A value in params.yaml is missing, misspelt, of the wrong type or out of range."""


class DataError(PipelineError):
    """The input data cannot be used as it is."""


class TrainingDiverged(PipelineError):
    """The loss stopped being finite during training."""


class TrackingError(PipelineError):
    """The MLflow tracking store or server cannot be used."""
