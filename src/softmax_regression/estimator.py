"""The trainer as a scikit-learn classifier: `SoftmaxRegression`, fitted through the train stage's own code.

    from softmax_regression import SoftmaxRegression
    model = SoftmaxRegression(impl="nn", optimizer="lbfgs", tol=1e-6).fit(X, y)
    model.predict_proba(X_new)

Its parameters are the keys of params.yaml's `train:` section, with the same defaults, so that
`SoftmaxRegression(**params["train"])` works. `fit` trains with `training.loop.train`, what the train stage runs:
the same objective, implementations, optimizers, standardisation and seeding; `predict_proba` is the same
`predict_proba` as `make predict` and the served model.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from softmax_regression.config import TrainParams, section
from softmax_regression.errors import ParamError
from softmax_regression.training.dataset import Dataset
from softmax_regression.training.loop import train
from softmax_regression.training.model import Model, log_softmax, predict_proba

DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainParams)}
DEFAULTS |= {"impl": "manual", "iterations": 250, "lr": 0.1, "l2": 0.01, "seed": 0}  # params.yaml's, for the
#                                                                                    fields TrainParams requires


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic (softmax) regression with an L2 penalty on the weights, as the pipeline trains it.

    Parameters: those of params.yaml's `train:` section (docs/training.md), the same defaults. `world_size`
    must be 1: ranks are the pipeline's (`train.world_size`), not the estimator's. `eval_every` sets how often
    `log_loss_curve_` records the log-loss on the training rows.

    Fitted attributes, in scikit-learn's orientation and on the raw features' scale: `classes_`, `coef_`
    (k, d), or (1, d) for two classes, `intercept_`, `n_features_in_`, `feature_names_in_` (fitted on a
    DataFrame), `n_iter_`; and `loss_curve_` (J before each iteration), `log_loss_curve_` ((iteration,
    log-loss) rows), `model_` (the pipeline's `Model`, which `training.model.write_model` writes as safetensors).
    """

    def __init__(self, impl: str = DEFAULTS["impl"], optimizer: str = DEFAULTS["optimizer"],
                 iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"], l2: float = DEFAULTS["l2"],
                 standardize: bool = DEFAULTS["standardize"], batch_size: int = DEFAULTS["batch_size"],
                 momentum: float = DEFAULTS["momentum"], tol: float = DEFAULTS["tol"], seed: int = DEFAULTS["seed"],
                 eval_every: int = DEFAULTS["eval_every"], dtype: str = DEFAULTS["dtype"],
                 device: str = DEFAULTS["device"], world_size: int = DEFAULTS["world_size"]) -> None:
        self.impl, self.optimizer, self.iterations, self.lr, self.l2 = impl, optimizer, iterations, lr, l2
        self.standardize, self.batch_size, self.momentum, self.tol, self.seed = standardize, batch_size, momentum, tol, seed
        self.eval_every, self.dtype, self.device, self.world_size = eval_every, dtype, device, world_size

    def fit(self, X: Any, y: Any) -> SoftmaxRegression:
        """Train on X (n, d) of numbers and y (n,) labels of any type."""
        params = self._train_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class: "
                             f"{self.classes_[0]!r}")
        features = ([str(name) for name in self.feature_names_in_] if hasattr(self, "feature_names_in_")
                    else [f"x{j}" for j in range(X.shape[1])])
        data = Dataset(_tensor(X), torch.from_numpy(codes.astype(np.int64)), features, [str(c) for c in self.classes_])
        self.model_, result, curves = train(data, params)
        self.coef_, self.intercept_ = _raw_scale(self.model_, binary=len(self.classes_) == 2)
        self.n_iter_ = len(result.losses)
        self.loss_curve_ = result.losses.numpy()
        self.log_loss_curve_ = np.array(list(zip(curves.iteration, curves.train_log_loss, strict=True)))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, k), in the order of `classes_`."""
        X = self._features(X)
        return predict_proba(self.model_, X).double().numpy()

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return log_softmax(self._logits(X)).double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row: the class `make predict` names."""
        most_probable = self.predict_proba(X).argmax(axis=1)
        return self.classes_[most_probable]

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits (n, k); with two classes, the second's minus the first's (n,)."""
        logits = self._logits(X).double().numpy()
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def _features(self, X: Any) -> torch.Tensor:
        check_is_fitted(self)
        return _tensor(validate_data(self, X, dtype=[np.float64, np.float32], reset=False))

    def _logits(self, X: Any) -> torch.Tensor:
        X = self._features(X)
        return self.model_.inputs(X) @ self.model_.W + self.model_.b

    def _train_params(self) -> TrainParams:
        """The parameters as params.yaml's `train:` section, checked by its own rules; a bad one is a
        ValueError naming it."""
        values = {name: _plain(getattr(self, name)) for name in DEFAULTS}
        try:
            params = section({"train": values}, "train", TrainParams)
        except ParamError as e:
            raise ValueError(f"{type(self).__name__}: {e.problem.replace('train.', '')}") from None
        if params.world_size != 1:
            raise ValueError(f"{type(self).__name__}: world_size must be 1, got {params.world_size}: ranks are the "
                             f"pipeline's (train.world_size), not the estimator's")
        return params


def _plain(value: Any) -> Any:
    """numpy's scalars (a grid search's values) as Python's, which params.yaml's types are."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _tensor(X: np.ndarray) -> torch.Tensor:
    """X as a tensor sharing its memory; a read-only array (a memory map) is copied, as torch writes none."""
    return torch.from_numpy(X if X.flags.writeable else X.copy())


def _raw_scale(model: Model, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """coef_ (k, d) and intercept_ (k,) acting on raw features: logits = ((x − mean)/scale)·W + b
    = x·(W/scale) + (b − (mean/scale)·W). With two classes, the second's minus the first's, (1, d) and (1,)."""
    W = model.W.double() / model.scale[:, None]  # (d, k)
    b = model.b.double() - (model.mean / model.scale) @ model.W.double()  # (k,)
    coef, intercept = W.T.numpy(), b.numpy()
    if binary:
        return coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    return coef, intercept
