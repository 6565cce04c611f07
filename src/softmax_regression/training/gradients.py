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
from softmax_regression.training.model import objective


def manual_loss_and_gradients(X: Tensor, y: Tensor, W: Tensor, b: Tensor, l2: float, n: float | None = None
                              ) -> tuple[Tensor, Tensor, Tensor]:
    """J and its gradients by hand. X (n, d), y (n,) class indices, W (d, k), b (k,).

    `n` divides the cross-entropy sum: the number of rows by default, a rank's share otherwise. The
    logits are laid out transposed, (k, n), so that the reductions over the k classes of each row run
    along contiguous memory: on large n that is most of the time an epoch spends outside the two matrix
    products.
    """
    n = X.shape[0] if n is None else n
    Lt = torch.addmm(b[:, None], W.T, X.T)  # logitsᵀ = WᵀXᵀ + b                    (k, n)
    picked = Lt.gather(0, y[None]).sum()  # Σ_i logit_i,y_i
    m = Lt.amax(dim=0)  # row maxima, for log-sum-exp                                (n,)
    Pt = Lt.sub_(m).exp_()  # exp(logits − max), in place                          (k, n)
    s = Pt.sum(dim=0)  # (n,)
    loss = ((m + s.log()).sum() - picked) / n + l2 * (W * W).sum()  # mean(lse − logit_y) + l2·ΣW²
    Pt /= s  # softmax P                                                           (k, n)
    Pt.scatter_add_(0, y[None], torch.full((1, len(y)), -1.0, dtype=X.dtype, device=X.device))  # (P − Y)ᵀ
    dW = torch.add((Pt @ X).T / n, W, alpha=2 * l2).contiguous()  # Xᵀ(P − Y)/n + 2·l2·W   (d, k)
    db = Pt.sum(dim=1) / n  # dJ/db = Σ_i (P − Y)_i / n                              (k,)
    return loss, dW, db


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

    def batch(self, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        return (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])

    def share(self, batch: int | None = None) -> float:
        """What this rank divides its cross-entropy sum by, so that the mean over ranks is J: batch / N."""
        return (self.n if batch is None else batch) / self.ranks.size

    def step_rule(self, lr: float, momentum: float) -> Rule:
        """How gd and sgd step `self.params` (each implementation's weights): written out here; nn's own."""
        return GradientStep(self.params, lr, momentum)


class Manual(Rows):
    """Forward pass, loss and gradients by hand; no autograd anywhere."""

    def __init__(self, X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, l2: float, ranks: Ranks = ONE,
                 n: int | None = None) -> None:
        super().__init__(X, y, l2, ranks, n)
        self.W, self.b = W0.clone(), b0.clone()
        self.params = [self.W, self.b]

    def loss_and_grad(self, rows: Tensor | None = None, batch: int | None = None) -> Tensor:
        X, y = self.batch(rows)
        loss, dW, db = manual_loss_and_gradients(X, y, self.W, self.b, self.l2, self.share(batch))
        self.W.grad, self.b.grad = dW, db
        self.ranks.mean_(loss, self.W.grad, self.b.grad)
        return loss

    def weights(self) -> tuple[Tensor, Tensor]:
        return self.W, self.b


class Autograd(Rows):
    """The same model and loss; gradients from `loss.backward()`, zeroed before each one.

    W is held as Wᵀ (k, d), as `torch.nn.Linear` holds it. Then backward forms ∂J/∂Wᵀ as (P − Y)ᵀX, the
    product the manual gradient computes; held as (d, k), autograd forms Xᵀ(P − Y) instead, which MKL
    runs 10–30 times slower on AMD CPUs (about 3 s against 0.1 s at 10⁶ × 100 float32).
    """

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
        loss = objective(X, y, self.Wt.T, self.b, self.l2, self.share(batch))
        loss.backward()
        loss = loss.detach()
        self.ranks.mean_(loss, self.Wt.grad, self.b.grad)
        return loss

    def weights(self) -> tuple[Tensor, Tensor]:
        return self.Wt.detach().T.contiguous(), self.b.detach()


class NN(Rows):
    """`torch.nn.Linear`, `nn.functional.cross_entropy` on logits, and `torch.optim.SGD`; on several ranks
    the module is wrapped in `DistributedDataParallel`, which averages the gradients in `backward()`."""

    def __init__(self, X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, l2: float, ranks: Ranks = ONE,
                 n: int | None = None) -> None:
        super().__init__(X, y, l2, ranks, n)
        self.linear = torch.nn.Linear(W0.shape[0], W0.shape[1], dtype=W0.dtype, device=W0.device)
        with torch.no_grad():  # nn.Linear stores Wᵀ (k, d)
            self.linear.weight.copy_(W0.T)
            self.linear.bias.copy_(b0)
        self.params = list(self.linear.parameters())
        self.module = self.linear
        if ranks.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            with ranks.collective():  # it broadcasts rank 0's parameters
                self.module = DistributedDataParallel(self.linear)

    def loss_and_grad(self, rows: Tensor | None = None, batch: int | None = None) -> Tensor:
        X, y = self.batch(rows)
        self.linear.zero_grad()
        # Logits as (1, k, m), cross_entropy's K-dimensional form: its log-softmax then runs along
        # contiguous memory, about twice as fast on large m as on (m, k).
        logits = self.module(X).T[None]
        loss = (F.cross_entropy(logits, y[None], reduction="sum") / self.share(batch)
                + self.l2 * self.linear.weight.pow(2).sum())
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
