"""Models-from-code: MLflow runs this file, not a pickle, to build the served model (see `pyfunc`)."""

from mlflow.models import set_model

from softmax_regression import runtime

runtime.settle()  # before the model's first tensor operation: the bits `make predict` gets

from softmax_regression.serving.pyfunc import SoftmaxRegressionModel  # noqa: E402

set_model(SoftmaxRegressionModel())
