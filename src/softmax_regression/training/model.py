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

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from softmax_regression.data.tables import ROW_GROUP, Moments, moments
from softmax_regression.files import atomic_path
from softmax_regression.parallel.ranks import ONE, Ranks


def log_softmax(logits: Tensor) -> Tensor:
    """log softmax along classes, (n, k) -> (n, k), through log-sum-exp."""
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


# Rows of X per block of an evaluation: a block (6.5 MB at 100 float32 features) stays in cache from the
# forward product to the backward one, so that X is read from memory once per evaluation, and its (B, k)
# logits never leave the cache.
EVALUATION_BLOCK = 16_384


def cross_entropy_sum(L: Tensor, y: Tensor) -> Tensor:
    """Σ_i −log softmax(L_i)[y_i] = Σ_i (logsumexp(L_i) − L_i,y_i) over logits L (m, k), through each row's
    maximum, so that exp never overflows. Differentiable: J does not depend on the maximum, so autograd may
    take it for a constant."""
    m = L.detach().amax(dim=1, keepdim=True)  # (m, 1)
    return (L - m).exp_().sum(dim=1).log_().sum() + m.sum() - L.gather(1, y[:, None]).sum()


def objective(X: Tensor, y: Tensor, Wt: Tensor, b: Tensor, l2: float, n: float | None = None) -> Tensor:
    """J(W, b): the cross-entropy sum over X's rows divided by n, plus the L2 penalty on W, from Wᵀ (k, d) as
    torch.nn.Linear holds it (the product X·Wᵀ is fastest that way round). A block of rows at a time.

    n is the number of rows of X by default; a rank's share of J over several ranks divides by another
    (see `ranks`).
    """
    n = X.shape[0] if n is None else n
    blocks = zip(X.split(EVALUATION_BLOCK), y.split(EVALUATION_BLOCK), strict=True)
    return sum(cross_entropy_sum(F.linear(Xb, Wt, b), yb) for Xb, yb in blocks) / n + l2 * (Wt * Wt).sum()


def objective_on_ranks(X: Tensor, y: Tensor, W: Tensor, b: Tensor, l2: float, n: int, ranks: Ranks = ONE
                       ) -> Tensor:
    """J at W (d, k), b over the n rows of every rank, without gradients: each rank's share over its rows X,
    y (its cross-entropy sum divided by n/N), averaged over the ranks."""
    with torch.no_grad():
        loss = objective(X, y, W.T.contiguous(), b, l2, n / ranks.size)
    ranks.mean_(loss)
    return loss


BLOCK = ROW_GROUP  # rows at a time in a pass over X that needs no whole copy of it


def feature_scaling(moments: Moments, ranks: Ranks = ONE) -> tuple[Tensor, Tensor]:
    """Per-feature mean and standard deviation, float64, of the rows of every rank, from this rank's `moments`
    (one pass over its rows, `data.tables.moments`); a constant feature gets scale 1. The ranks' moments are
    brought to one scale (the largest |x| of all), then added: the mean first, then the deviations from it."""
    size = ranks.max_(torch.from_numpy(moments.size.copy()))
    own = moments.on(size.numpy())
    n = ranks.total(own.n)
    mean = ranks.sum_(torch.from_numpy(own.mean * own.n)) / n
    m2 = ranks.sum_(torch.from_numpy(own.m2 + own.n * np.square(own.mean - mean.numpy())))
    std = (m2 / n).sqrt_()
    return mean * size, torch.where(std > 0, std * size, torch.ones_like(std))


def scaling_of(X: Tensor, standardize: bool, ranks: Ranks = ONE) -> tuple[Tensor, Tensor]:
    """The scaling of raw features X (m, d) in memory (this rank's rows): their `feature_scaling` when
    standardising, else none (mean 0, scale 1). X is read a block of ROW_GROUP rows at a time, the blocks a
    split file's reader gives, so that both give the same bits."""
    if not standardize:
        return no_scaling(X.shape[1])
    return feature_scaling(moments(block.cpu().numpy() for block in X.split(ROW_GROUP)), ranks)


def no_scaling(d: int) -> tuple[Tensor, Tensor]:
    """The scaling that changes nothing: mean 0, scale 1 for each of d features."""
    return torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)


def standardize(X: Tensor, mean: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """(X − mean) / scale, computed in float64 (raw features may exceed float32), returned in `dtype`;
    a block of rows at a time, so that the float64 intermediate is never a whole copy of X. X itself when
    that changes nothing (no scaling, and X in `dtype` already)."""
    if X.dtype == dtype and not mean.any() and bool((scale == 1).all()):
        return X
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


def probabilities(Z: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """Class probabilities (n, k) for the model's inputs Z (n, d), W (d, k), b (k,)."""
    return log_softmax(Z @ W + b).exp()


def predict_proba(model: Model, X: Tensor) -> Tensor:
    """Class probabilities (n, k) for raw features X (n, d)."""
    return probabilities(model.inputs(X), model.W, model.b)


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
