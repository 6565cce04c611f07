"""Models-from-code: MLflow runs this file, not a pickle, to build the served model (see `pyfunc`)."""

from mlflow.models import set_model

from softmax_regression.pyfunc import SoftmaxRegressionModel

set_model(SoftmaxRegressionModel())
