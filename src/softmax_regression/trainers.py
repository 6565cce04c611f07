"""Three ways to minimise one objective with full-batch gradient descent.

They share the model, the loss, the initial weights and the signature, and differ only in how the
gradient is obtained: by hand (`manual`), by `loss.backward()` (`autograd`), or by `torch.nn` and
`torch.optim` (`nn`). Same inputs, same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from softmax_regression.errors import ParamError, TrainingDiverged
from softmax_regression.model import log_softmax, objective


@dataclass(frozen=True)
class Fit:
    W: Tensor  # (d, k)
    b: Tensor  # (k,)
    losses: Tensor  # (iterations,) the objective at the weights each step started from


def manual_loss_and_gradients(X: Tensor, Y: Tensor, W: Tensor, b: Tensor, l2: float
                              ) -> tuple[Tensor, Tensor, Tensor]:
    """J and its gradients by hand. X (n, d), Y one-hot (n, k), W (d, k), b (k,)."""
    n = X.shape[0]
    log_P = log_softmax(X @ W + b)  # (n, k)
    loss = -(Y * log_P).sum() / n + l2 * (W * W).sum()
    G = (log_P.exp() - Y) / n  # dJ/dlogits = (softmax − Y)/n   (n, k)
    dW = X.T @ G + 2 * l2 * W  # dJ/dW = Xᵀ(P − Y)/n + 2·l2·W     (d, k)
    db = G.sum(dim=0)  # dJ/db = Σ_i (P − Y)_i / n           (k,)
    return loss, dW, db


def fit_manual(X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, lr: float, l2: float, iterations: int) -> Fit:
    Y = F.one_hot(y, W0.shape[1]).to(X.dtype)
    W, b = W0.clone(), b0.clone()
    losses = torch.empty(iterations, dtype=torch.float64)
    for t in range(iterations):
        loss, dW, db = manual_loss_and_gradients(X, Y, W, b, l2)
        _record(losses, t, loss, lr)
        W -= lr * dW
        b -= lr * db
    return Fit(W, b, losses)


def fit_autograd(X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, lr: float, l2: float, iterations: int) -> Fit:
    W = W0.clone().requires_grad_()
    b = b0.clone().requires_grad_()
    losses = torch.empty(iterations, dtype=torch.float64)
    for t in range(iterations):
        loss = objective(X, y, W, b, l2)
        _record(losses, t, loss, lr)
        loss.backward()
        with torch.no_grad():
            W -= lr * W.grad
            b -= lr * b.grad
        W.grad = None
        b.grad = None
    return Fit(W.detach(), b.detach(), losses)


def fit_nn(X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, lr: float, l2: float, iterations: int) -> Fit:
    linear = torch.nn.Linear(W0.shape[0], W0.shape[1], dtype=W0.dtype)
    with torch.no_grad():  # nn.Linear stores Wᵀ (k, d)
        linear.weight.copy_(W0.T)
        linear.bias.copy_(b0)
    optimizer = torch.optim.SGD(linear.parameters(), lr=lr)
    losses = torch.empty(iterations, dtype=torch.float64)
    for t in range(iterations):
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(X), y) + l2 * linear.weight.pow(2).sum()
        _record(losses, t, loss, lr)
        loss.backward()
        optimizer.step()
    return Fit(linear.weight.detach().T.contiguous(), linear.bias.detach().clone(), losses)


Trainer = Callable[[Tensor, Tensor, Tensor, Tensor, float, float, int], Fit]
TRAINERS: dict[str, Trainer] = {"autograd": fit_autograd, "manual": fit_manual, "nn": fit_nn}


def trainer(impl: str) -> Trainer:
    if impl not in TRAINERS:
        raise ParamError(f"train.impl must be one of {sorted(TRAINERS)}, got {impl!r}")
    return TRAINERS[impl]


def _record(losses: Tensor, t: int, loss: Tensor, lr: float) -> None:
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged at iteration {t}: the loss is {value} with train.lr={lr}; "
                               f"try a smaller train.lr")
    losses[t] = value
