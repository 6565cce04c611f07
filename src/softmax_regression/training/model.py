"""The model and its objective, shared by every implementation.

    Z = (X − mean) / scale                standardised features (mean 0, scale 1 when not standardising)
    logits = Z W + b                      X, Z (n, d), W (d, k), b (k,)
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
from softmax_regression.parallel.ranks import ONE, Ranks


def log_softmax(logits: Tensor) -> Tensor:
    """log softmax along classes, (n, k) -> (n, k), through log-sum-exp."""
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


def objective(X: Tensor, y: Tensor, W: Tensor, b: Tensor, l2: float, n: float | None = None) -> Tensor:
    """J(W, b): mean cross-entropy Σ_i(logsumexp(logits_i) − logit_i,y_i) / n plus the L2 penalty on W.

    n is the number of rows of X by default; a rank's share of J over several ranks divides by another
    (see `ranks`). The logits are laid out (k, n) so that the reductions over classes run along
    contiguous memory.
    """
    n = X.shape[0] if n is None else n
    Lt = torch.addmm(b[:, None], W.T, X.T)  # logitsᵀ (k, n)
    return (torch.logsumexp(Lt, dim=0) - Lt.gather(0, y[None])[0]).sum() / n + l2 * (W * W).sum()


def objective_on_ranks(X: Tensor, y: Tensor, W: Tensor, b: Tensor, l2: float, n: int, ranks: Ranks = ONE
                       ) -> Tensor:
    """J over the n rows of every rank, without gradients: each rank's share over its rows X, y (its
    cross-entropy sum divided by n/N), averaged over the ranks."""
    with torch.no_grad():
        loss = objective(X, y, W, b, l2, n / ranks.size)
    ranks.mean_(loss)
    return loss


BLOCK = 65_536  # rows at a time where a whole copy of X is not needed


def feature_scaling(X: Tensor, ranks: Ranks = ONE) -> tuple[Tensor, Tensor]:
    """Per-feature mean and standard deviation of X (m, d) over the rows of every rank, float64; a
    constant feature gets scale 1.

    Computed on X / max|X| so that features of any magnitude (1e300 included) do not overflow, in two
    passes (the mean, then the squared deviations from it), each a sum over the ranks, and over blocks
    of rows so that no copy of X is made.
    """
    size = ranks.max_(X.abs().amax(dim=0).double())
    size = torch.where(size > 0, size, torch.ones_like(size))
    n = ranks.total(X.shape[0])
    mean = ranks.sum_(sum((block.double() / size).sum(dim=0) for block in X.split(BLOCK))) / n
    squares = sum((block.double() / size - mean).square_().sum(dim=0) for block in X.split(BLOCK))
    std = (ranks.sum_(squares) / n).sqrt_()
    return mean * size, torch.where(std > 0, std * size, torch.ones_like(std))


def standardize(X: Tensor, mean: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """(X − mean) / scale, computed in float64 (raw features may exceed float32), returned in `dtype`;
    a block of rows at a time, so that the float64 intermediate is never a whole copy of X."""
    Z = torch.empty(X.shape, dtype=dtype)
    for start in range(0, X.shape[0], BLOCK):
        Z[start:start + BLOCK] = ((X[start:start + BLOCK].double() - mean) / scale).to(dtype)
    return Z


def initial_weights(n_features: int, n_classes: int, seed: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """W0 ~ N(0, 0.01²) drawn from its own generator seeded with `seed`, b0 = 0. Same seed, same bits."""
    generator = torch.Generator().manual_seed(seed)
    W = 0.01 * torch.randn(n_features, n_classes, generator=generator, dtype=torch.float64)
    return W.to(dtype), torch.zeros(n_classes, dtype=dtype)


@dataclass(frozen=True)
class Model:
    """A fitted model with what is needed to use it on a new table."""

    W: Tensor  # (d, k) on standardised features
    b: Tensor  # (k,)
    features: list[str]  # column names, in the order of W's rows
    classes: list[str]  # class names, in the order of W's columns
    mean: Tensor  # (d,) float64, subtracted from the raw features
    scale: Tensor  # (d,) float64, dividing them after that

    def inputs(self, X: Tensor) -> Tensor:
        """Raw features (n, d) as the model's inputs."""
        return standardize(X, self.mean, self.scale, self.W.dtype)


def predict_proba(model: Model, X: Tensor) -> Tensor:
    """Class probabilities (n, k) for raw features X (n, d)."""
    return log_softmax(model.inputs(X) @ model.W + model.b).exp()


def write_model(path: str | Path, model: Model) -> None:
    """A safetensors file: tensors plus JSON metadata; reading it back runs no pickle.

    The metadata is one key: safetensors writes several keys in no fixed order, and the file must be
    the same bytes for the same model.
    """
    metadata = {"model": json.dumps({"features": model.features, "classes": model.classes})}
    with atomic_path(path) as tmp:
        tensors = {"W": model.W, "b": model.b, "mean": model.mean, "scale": model.scale}
        save_file({name: t.contiguous() for name, t in tensors.items()}, tmp, metadata=metadata)


def read_model(path: str | Path) -> Model:
    with safe_open(path, framework="pt") as f:
        metadata = json.loads(f.metadata()["model"])
        return Model(f.get_tensor("W"), f.get_tensor("b"), metadata["features"], metadata["classes"],
                     f.get_tensor("mean"), f.get_tensor("scale"))
