"""From a dataset to a fitted model: train, and describe the result."""

from __future__ import annotations

import csv
import io

import torch
from torch import Tensor

from softmax_regression.config import TrainParams
from softmax_regression.dataset import Dataset
from softmax_regression.metrics import accuracy, log_loss
from softmax_regression.model import Model, initial_weights, objective, predict_proba
from softmax_regression.trainers import trainer


def train(data: Dataset, params: TrainParams) -> tuple[Model, Tensor]:
    """Fit with params.impl from the seeded initial weights; returns the model and the loss per iteration."""
    fit = trainer(params.impl)
    torch.use_deterministic_algorithms(True)  # same params and seed, same bits
    W0, b0 = initial_weights(data.X.shape[1], len(data.classes), params.seed, data.X.dtype)
    result = fit(data.X, data.y, W0, b0, params.lr, params.l2, params.iterations)
    return Model(result.W, result.b, data.features, data.classes), result.losses


def train_metrics(model: Model, data: Dataset, l2: float) -> dict[str, float]:
    """The final objective and the fit on the training rows."""
    with torch.no_grad():
        P = predict_proba(data.X, model.W, model.b)
        loss = objective(data.X, data.y, model.W, model.b, l2).item()
    return {"train_loss_final": loss, "train_log_loss": log_loss(P, data.y), "train_accuracy": accuracy(P, data.y)}


def coefficients_csv(model: Model) -> str:
    """A readable table: one row per feature and one for the bias, one column per class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["feature", *model.classes])
    writer.writerows([name, *row] for name, row in zip(model.features, model.W.tolist()))
    writer.writerow(["(bias)", *model.b.tolist()])
    return out.getvalue()
