"""The model and its objective, shared by every implementation.

    logits = X W + b                      X (n, d), W (d, k), b (k,)
    J(W, b) = mean_i CE(softmax(logits_i), y_i) + l2 · ΣW²   (the bias is not penalised)

Softmax only ever meets a log through log-sum-exp, so logits of any size give a finite loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from softmax_regression.files import atomic_path


def log_softmax(logits: Tensor) -> Tensor:
    """log softmax along classes, (n, k) -> (n, k), through log-sum-exp."""
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of the integer labels y (n,) under softmax(logits)."""
    return -log_softmax(logits).gather(1, y[:, None]).mean()


def objective(X: Tensor, y: Tensor, W: Tensor, b: Tensor, l2: float) -> Tensor:
    """J(W, b): mean cross-entropy plus the L2 penalty on W."""
    return cross_entropy(X @ W + b, y) + l2 * (W * W).sum()


def predict_proba(X: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """Class probabilities (n, k)."""
    return log_softmax(X @ W + b).exp()


def initial_weights(n_features: int, n_classes: int, seed: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """W0 ~ N(0, 0.01²) drawn from its own generator seeded with `seed`, b0 = 0. Same seed, same bits."""
    generator = torch.Generator().manual_seed(seed)
    W = 0.01 * torch.randn(n_features, n_classes, generator=generator, dtype=torch.float64)
    return W.to(dtype), torch.zeros(n_classes, dtype=dtype)


class SoftmaxRegression(torch.nn.Module):
    """The fitted model as a module: features (n, d) -> class probabilities (n, k). What MLflow serves."""

    def __init__(self, W: Tensor, b: Tensor) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=W.dtype)
        with torch.no_grad():
            self.linear.weight.copy_(W.T)
            self.linear.bias.copy_(b)

    def forward(self, X: Tensor) -> Tensor:
        return torch.softmax(self.linear(X), dim=1)


@dataclass(frozen=True)
class Model:
    """A fitted model with what is needed to use it on a new table."""

    W: Tensor  # (d, k)
    b: Tensor  # (k,)
    features: list[str]  # column names, in the order of W's rows
    classes: list[str]  # class names, in the order of W's columns


def write_model(path: str | Path, model: Model) -> None:
    """A safetensors file: tensors plus JSON metadata; reading it back runs no pickle.

    The metadata is one key: safetensors writes several keys in no fixed order, and the file must be
    the same bytes for the same model.
    """
    metadata = {"model": json.dumps({"features": model.features, "classes": model.classes})}
    with atomic_path(path) as tmp:
        save_file({"W": model.W.contiguous(), "b": model.b.contiguous()}, tmp, metadata=metadata)


def read_model(path: str | Path) -> Model:
    with safe_open(path, framework="pt") as f:
        metadata = json.loads(f.metadata()["model"])
        return Model(f.get_tensor("W"), f.get_tensor("b"), metadata["features"], metadata["classes"])
