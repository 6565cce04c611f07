"""Models-from-code: MLflow runs this file, not a pickle, to build the served model (see `pyfunc`)."""

import os

from mlflow.models import set_model

from softmax_regression.process import cpu_kernels

for key, value in cpu_kernels().items():  # before the model's first tensor operation: the bits `make predict` gets
    os.environ.setdefault(key, value)

from softmax_regression.serving.pyfunc import SoftmaxRegressionModel  # noqa: E402

set_model(SoftmaxRegressionModel())
