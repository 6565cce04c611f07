"""The MLflow model: a pyfunc that takes a table of named feature columns and answers with class names
and probabilities, through the same `prediction_table` as `make predict`.

It is logged as code (MLflow runs `model_code.py` to build it; `tracking.runs.log_model` logs it), with the
safetensors weights as an artifact and this package as its code: loading it unpickles nothing, and needs
no installed package.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from softmax_regression.errors import DataError
from softmax_regression.serving.predictions import prediction_table
from softmax_regression.training.model import Model, read_model

WEIGHTS = "weights"  # the artifact's key: models/model.safetensors
CODE = Path(__file__).resolve().parent / "model_code.py"  # what MLflow runs to build the model
PACKAGE = CODE.parents[1]  # copied into the model, so that it loads where the package is not installed
SERVING_PACKAGES = ("torch", "safetensors", "pandas")  # what the served model imports besides MLflow


class SoftmaxRegressionModel(PythonModel):
    model: Model

    def load_context(self, context: PythonModelContext) -> None:
        self.model = read_model(context.artifacts[WEIGHTS])

    def predict(self, context: PythonModelContext | None, model_input: pd.DataFrame,
                params: dict | None = None) -> pd.DataFrame:
        """Raw features by name -> `predicted`, `p(<class>)`…; a bad column or value is an MlflowException
        that the scoring server answers with HTTP 400."""
        try:
            return prediction_table(self.model, model_input)
        except DataError as e:
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from None


def requirements() -> list[str]:
    """The served model's pip requirements, pinned to the versions installed here."""
    # "2.13.0+cpu" is not a version on PyPI
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in SERVING_PACKAGES]
