"""From a dataset to a fitted model: scale, train, and describe the result."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from softmax_regression.config import TrainParams
from softmax_regression.dataset import Dataset
from softmax_regression.errors import DataError, ParamError
from softmax_regression.metrics import accuracy, log_loss
from softmax_regression.model import (Model, feature_scaling, initial_weights, objective, predict_proba,
                                      standardize)
from softmax_regression.trainers import Fit, check_choices, fit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def device_for(name: str) -> torch.device:
    """train.device as a torch device: `auto` is CUDA when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("params.yaml: train.device is 'cuda' but torch sees no CUDA device; use cpu or auto")
    return torch.device(name)


@dataclass
class Curves:
    """Log-loss (mean cross-entropy, no penalty) on train and test rows every train.eval_every iterations."""

    iteration: list[int] = field(default_factory=list)
    train_log_loss: list[float] = field(default_factory=list)
    test_log_loss: list[float] = field(default_factory=list)

    def add(self, iteration: int, train_log_loss: float, test_log_loss: float) -> None:
        self.iteration.append(iteration)
        self.train_log_loss.append(train_log_loss)
        self.test_log_loss.append(test_log_loss)

    def csv(self) -> str:
        rows = zip(self.iteration, self.train_log_loss, self.test_log_loss)
        return "iteration,train_log_loss,test_log_loss\n" + "".join(f"{t},{a!r},{b!r}\n" for t, a, b in rows)


def train(data: Dataset, params: TrainParams, test: Dataset | None = None,
          progress: Callable[[int, float], None] | None = None) -> tuple[Model, Fit, Curves]:
    """Fit with params.impl and params.optimizer from the seeded initial weights.

    The data moves to the device once, in the training dtype, standardised (with train-set statistics)
    when params.standardize is set. With a test set and params.eval_every, the log-loss on both is
    recorded along the way; `progress(iteration, loss)` is told of every iteration.
    """
    check_choices(params)
    device, dtype = device_for(params.device), DTYPES[params.dtype]
    torch.use_deterministic_algorithms(True)  # same params and seed, same bits
    d = data.X.shape[1]
    if params.standardize:
        mean, scale = feature_scaling(data.X)
    else:
        mean, scale = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    X = standardize(data.X, mean, scale, dtype)
    _check_representable(X, data.features, params.dtype)
    X, y = X.to(device), data.y.to(device)
    curves = Curves()
    watch = []
    if test is not None and params.eval_every:
        watch = [(X, y), (standardize(test.X, mean, scale, dtype).to(device), test.y.to(device))]

    def record(W: Tensor, b: Tensor, t: int) -> None:
        with torch.no_grad():
            curves.add(t, *(objective(Xw, yw, W, b, 0.0).item() for Xw, yw in watch))

    def monitor(t: int, loss: float, weights: Callable[[], tuple[Tensor, Tensor]]) -> bool:
        if progress is not None:
            progress(t, loss)
        if watch and t % params.eval_every == 0:
            record(*weights(), t)
        return False

    W0, b0 = initial_weights(d, len(data.classes), params.seed, dtype)
    result = fit(X, y, W0.to(device), b0.to(device), params, callback=monitor)
    if watch:
        record(result.W.to(device), result.b.to(device), len(result.losses))  # the final weights
    return Model(result.W, result.b, data.features, data.classes, mean, scale), result, curves


def train_metrics(model: Model, data: Dataset, l2: float) -> dict[str, float]:
    """The final objective and the fit on the training rows."""
    with torch.no_grad():
        P = predict_proba(model, data.X)
        loss = objective(model.inputs(data.X), data.y, model.W, model.b, l2).item()
    return {"train_loss_final": loss, "train_log_loss": log_loss(P, data.y), "train_accuracy": accuracy(P, data.y)}


def coefficients_csv(model: Model) -> str:
    """A readable table: one row per feature and one for the bias, one column per class.

    The weights act on standardised features, z = (x − mean) / scale; the last two columns give them.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["feature", *model.classes, "mean", "scale"])
    for name, row, mean, scale in zip(model.features, model.W.tolist(), model.mean.tolist(), model.scale.tolist()):
        writer.writerow([name, *row, mean, scale])
    writer.writerow(["(bias)", *model.b.tolist(), "", ""])
    return out.getvalue()


def coefficient_heat_map(model: Model, path: str) -> None:
    """Weights on standardised features (feature × class): comparable across features, unlike raw units."""
    from softmax_regression.figures import heat_map

    heat_map(path, model.W.double().numpy(), model.features, model.classes, "Coefficients (standardised features)"
             if bool((model.scale != 1).any()) else "Coefficients", "class", "feature", centred=True)


def _check_representable(X: torch.Tensor, features: list[str], dtype: str) -> None:
    bad = (~torch.isfinite(X)).any(dim=0).nonzero().flatten().tolist()
    if bad:
        raise DataError(f"feature {features[bad[0]]!r} has values too large for {dtype}; set "
                        f"train.standardize: true or train.dtype: float64")
