"""One objective, three ways to get its gradient (`train.impl`): by hand (`manual`), by `loss.backward()`
(`autograd`), or through `torch.nn` (`nn`). From the same weights they give the same J and ∇J.

On several ranks (`train.world_size`, see `parallel.ranks`) each implementation computes its rank's share
of J and of the gradient over the rows it holds, and averages them over the ranks: the optimizers then
see the full-batch J and ∇J, as on one process.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from softmax_regression.config import Impl
from softmax_regression.parallel.ranks import ONE, Ranks
from softmax_regression.training.model import EVALUATION_BLOCK, objective


def manual_loss_and_gradients(X: Tensor, y: Tensor, Wt: Tensor, b: Tensor, l2: float, n: float | None = None
                              ) -> tuple[Tensor, Tensor, Tensor]:
    """J and its gradients by hand. X (m, d), y (m,) class indices, Wᵀ (k, d), b (k,).

    `n` divides the cross-entropy sum: the number of rows by default, a rank's share otherwise. A block of
    rows at a time (EVALUATION_BLOCK), so that X's block is still in cache for the backward product; the
    blocks' sums are added in row order, whatever the number of threads.
    """
    n = X.shape[0] if n is None else n
    total, dWt, db = X.new_zeros(()), torch.zeros_like(Wt), torch.zeros_like(b)
    minus_one = X.new_full((min(len(y), EVALUATION_BLOCK), 1), -1.0)
    for Xb, yb in zip(X.split(EVALUATION_BLOCK), y[:, None].split(EVALUATION_BLOCK), strict=True):
        L = F.linear(Xb, Wt, b)  # logits = Xb Wᵀ + b                                  (B, k)
        m = L.amax(dim=1, keepdim=True)  # row maxima, for log-sum-exp                   (B, 1)
        picked = L.sub_(m).gather(1, yb).sum()  # Σ_i (logit_i,y_i − max_i)
        s = L.exp_().sum(dim=1, keepdim=True)  # exp(logits − max) in place; Σ_j        (B, 1)
        total += s.log().sum() - picked  # Σ_i lse_i − logit_i,y_i
        L.div_(s).scatter_add_(1, yb, minus_one[:len(yb)])  # softmax P, then P − Y, in place  (B, k)
        dWt.addmm_(L.T, Xb)  # += (P − Y)ᵀ Xb                                          (k, d)
        db += L.sum(dim=0)  # += Σ_i (P − Y)_i                                          (k,)
    loss = total / n + l2 * (Wt * Wt).sum()  # mean(lse − logit_y) + l2·ΣW²
    return loss, dWt.div_(n).add_(Wt, alpha=2 * l2), db.div_(n)  # ∂J/∂Wᵀ = (P − Y)ᵀX/n + 2·l2·Wᵀ, ∂J/∂b


class GradientStep:
    """p ← p − lr·v with v ← momentum·v + ∇p (v = ∇p without momentum), written out.

    The same update as torch.optim.SGD without dampening or Nesterov, for the implementations that do
    their own arithmetic.
    """

    def __init__(self, params: list[Tensor], lr: float, momentum: float = 0.0) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity: list[Tensor | None] = [None] * len(params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            step = p.grad
            if self.momentum:
                v = self.velocity[i]
                step = self.velocity[i] = p.grad.clone() if v is None else v.mul_(self.momentum).add_(p.grad)
            p.sub_(self.lr * step)


Rule = GradientStep | torch.optim.Optimizer  # how gd, sgd and lbfgs step the weights


class Rows:
    """What every implementation holds: X (m, d), y (m,), this rank's rows, of n rows on all ranks
    (m = n on one process). `loss_and_grad(rows, batch)` returns J over a batch and leaves its gradient
    in `p.grad`: `rows` index this rank's part of a batch of `batch` rows in all (default: all rows)."""

    def __init__(self, X: Tensor, y: Tensor, l2: float, ranks: Ranks, n: int | None) -> None:
        self.X, self.y, self.l2, self.ranks = X, y, l2, ranks
        self.n = X.shape[0] if n is None else n
        self.evaluations = 0  # of J and ∇J over every row

    def batch(self, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        if rows is None:
            self.evaluations += 1
            return self.X, self.y
        return self.X[rows], self.y[rows]

    def share(self, batch: int | None = None) -> float:
        """What this rank divides its cross-entropy sum by, so that the mean over ranks is J: batch / N."""
        return (self.n if batch is None else batch) / self.ranks.size

    def step_rule(self, lr: float, momentum: float) -> Rule:
        """How gd and sgd step `self.params` (each implementation's weights): written out here; nn's own."""
        return GradientStep(self.params, lr, momentum)


class Manual(Rows):
    """Forward pass, loss and gradients by hand; no autograd anywhere. W is held as Wᵀ (k, d), as
    `torch.nn.Linear` holds it: the forward product X·Wᵀ and the backward one (P − Y)ᵀX are then each the
    faster of their two orientations (Xᵀ(P − Y) is 5–10 times slower with MKL on AMD CPUs)."""

    def __init__(self, X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, l2: float, ranks: Ranks = ONE,
                 n: int | None = None) -> None:
        super().__init__(X, y, l2, ranks, n)
        self.Wt, self.b = W0.T.contiguous(), b0.clone()
        self.params = [self.Wt, self.b]

    def loss_and_grad(self, rows: Tensor | None = None, batch: int | None = None) -> Tensor:
        X, y = self.batch(rows)
        loss, self.Wt.grad, self.b.grad = manual_loss_and_gradients(X, y, self.Wt, self.b, self.l2, self.share(batch))
        self.ranks.mean_(loss, self.Wt.grad, self.b.grad)
        return loss

    def weights(self) -> tuple[Tensor, Tensor]:
        return self.Wt.T.contiguous(), self.b


class Autograd(Rows):
    """The same model and loss (`model.objective`); gradients from `loss.backward()`, zeroed before each one.
    W is held as Wᵀ (k, d), as in `Manual`: backward then forms ∂J/∂Wᵀ as (P − Y)ᵀX too."""

    def __init__(self, X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, l2: float, ranks: Ranks = ONE,
                 n: int | None = None) -> None:
        super().__init__(X, y, l2, ranks, n)
        self.Wt = W0.T.clone(memory_format=torch.contiguous_format).requires_grad_()
        self.b = b0.clone().requires_grad_()
        self.params = [self.Wt, self.b]

    def loss_and_grad(self, rows: Tensor | None = None, batch: int | None = None) -> Tensor:
        X, y = self.batch(rows)
        for p in self.params:
            p.grad = None
        loss = objective(X, y, self.Wt, self.b, self.l2, self.share(batch))
        loss.backward()
        loss = loss.detach()
        self.ranks.mean_(loss, self.Wt.grad, self.b.grad)
        return loss

    def weights(self) -> tuple[Tensor, Tensor]:
        return self.Wt.detach().T.contiguous(), self.b.detach()


class SoftmaxRegressionNet(torch.nn.Module):
    """`torch.nn.Linear` and `nn.functional.cross_entropy`: the cross-entropy sum over a batch, a block of rows
    at a time (EVALUATION_BLOCK: the block stays in cache from the forward product to the backward one)."""

    def __init__(self, d: int, k: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(d, k, dtype=dtype, device=device)

    def forward(self, X: Tensor, y: Tensor) -> Tensor:
        # Logits as (1, k, B), cross_entropy's K-dimensional form: its log-softmax then runs along contiguous
        # memory, about twice as fast as on (B, k).
        return sum(F.cross_entropy(self.linear(Xb).T[None], yb[None], reduction="sum")
                   for Xb, yb in zip(X.split(EVALUATION_BLOCK), y.split(EVALUATION_BLOCK), strict=True))


class NN(Rows):
    """`SoftmaxRegressionNet` and `torch.optim.SGD`; on several ranks the module is wrapped in
    `DistributedDataParallel`, which averages the gradients in `backward()`."""

    def __init__(self, X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, l2: float, ranks: Ranks = ONE,
                 n: int | None = None) -> None:
        super().__init__(X, y, l2, ranks, n)
        self.net = SoftmaxRegressionNet(W0.shape[0], W0.shape[1], W0.dtype, W0.device)
        self.linear = self.net.linear
        with torch.no_grad():  # nn.Linear stores Wᵀ (k, d)
            self.linear.weight.copy_(W0.T)
            self.linear.bias.copy_(b0)
        self.params = list(self.linear.parameters())
        self.module = self.net
        if ranks.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            with ranks.collective():  # it broadcasts rank 0's parameters
                self.module = DistributedDataParallel(self.net)

    def loss_and_grad(self, rows: Tensor | None = None, batch: int | None = None) -> Tensor:
        X, y = self.batch(rows)
        self.net.zero_grad()
        loss = self.module(X, y) / self.share(batch) + self.l2 * self.linear.weight.pow(2).sum()
        with self.ranks.collective():
            loss.backward()  # DistributedDataParallel averages the gradients over the ranks here
        loss = loss.detach()
        self.ranks.mean_(loss)
        return loss

    def step_rule(self, lr: float, momentum: float) -> torch.optim.SGD:
        return torch.optim.SGD(self.params, lr=lr, momentum=momentum)

    def weights(self) -> tuple[Tensor, Tensor]:
        return self.linear.weight.detach().T.contiguous(), self.linear.bias.detach().clone()


Implementation = Manual | Autograd | NN
IMPLEMENTATIONS: dict[Impl, Callable[..., Implementation]] = {"autograd": Autograd, "manual": Manual, "nn": NN}
