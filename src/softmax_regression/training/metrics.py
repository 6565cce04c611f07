"""Classification metrics from class probabilities. Shapes: P (n, k) probabilities, y (n,) labels."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def accuracy(P: Tensor, y: Tensor) -> float:
    return correct(P, y) / len(y)


def log_loss(P: Tensor, y: Tensor) -> float:
    """Mean −log p(y_i)."""
    return negative_log_likelihood(P, y) / len(y)


def correct(P: Tensor, y: Tensor) -> int:
    """The number of rows whose most probable class is the true one."""
    return int((P.argmax(dim=1) == y).sum().item())


def negative_log_likelihood(P: Tensor, y: Tensor) -> float:
    """Σ −log p(y_i); probabilities are clipped at the smallest positive float, as log 0 is −inf."""
    p = P.double().gather(1, y[:, None]).clamp_min(torch.finfo(torch.float64).tiny)
    return -p.log().sum().item()


def confusion_matrix(y_true: Tensor, y_pred: Tensor, n_classes: int) -> Tensor:
    """C[i, j] = number of rows of class i predicted as class j, (k, k)."""
    return torch.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def classification_report(P: Tensor, y: Tensor, classes: list[str]) -> dict:
    """Accuracy, log-loss, per-class precision/recall/F1/support and the confusion matrix, as plain data.

    A precision or recall with nothing to divide by (no row predicted, or none true) is 0, as in scikit-learn.
    """
    C = confusion_matrix(y, P.argmax(dim=1), len(classes)).double()
    per_class = {}
    for c, name in enumerate(classes):
        tp, predicted, actual = C[c, c].item(), C[:, c].sum().item(), C[c, :].sum().item()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
    return {
        "accuracy": accuracy(P, y),
        "log_loss": log_loss(P, y),
        "macro_f1": math.fsum(m["f1"] for m in per_class.values()) / len(classes),
        "per_class": per_class,
        "confusion_matrix": {a: {p: int(C[i, j].item()) for j, p in enumerate(classes)}
                             for i, a in enumerate(classes)},
    }


def confusion_rows(y_true: Tensor, y_pred: Tensor, classes: list[str]) -> list[tuple[str, str]]:
    """One `(actual, predicted)` row of class names per example: the input of DVC's confusion template."""
    return [(classes[a], classes[p]) for a, p in zip(y_true.tolist(), y_pred.tolist(), strict=True)]
