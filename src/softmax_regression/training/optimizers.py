"""Three ways to use the gradient (`train.optimizer`): full-batch gradient descent (`gd`, the tutorial's),
mini-batch `sgd`, or `lbfgs`. Any implementation (`gradients`) works with any optimizer; from the same initial
weights they give the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from softmax_regression.config import Optimizer, TrainParams
from softmax_regression.errors import TrainingDiverged
from softmax_regression.parallel.ranks import ONE, Ranks
from softmax_regression.training.gradients import IMPLEMENTATIONS, Implementation, Rule
from softmax_regression.training.model import objective_on_ranks


@dataclass(frozen=True)
class Fit:
    W: Tensor  # (d, k)
    b: Tensor  # (k,)
    losses: Tensor  # (iterations run,) the objective at the weights each iteration started from
    converged: bool  # stopped on train.tol before train.iterations
    seconds: float = 0.0  # wall time of the iterations, set-up excluded
    setup_seconds: float = 0.0  # making the implementation and its step rule (`step_rule`)
    evaluations: int = 0  # of J and ∇J over every row (gd and lbfgs; sgd evaluates mini-batches)


Record = Callable[[int, Tensor], None]


def step_rule(impl: Implementation, p: TrainParams) -> Rule:
    """How train.optimizer turns gradients into steps, made before training is timed: the first torch.optim
    optimizer in a process imports torch._dynamo (about 2.4 s), which is set-up, not training."""
    if p.optimizer == "lbfgs":
        # max_eval bounds the line search too: one evaluation at the start of the step, up to 25 in it.
        return torch.optim.LBFGS(impl.params, lr=1, max_iter=1, max_eval=26, history_size=20,
                                 tolerance_grad=p.tol, tolerance_change=0.0, line_search_fn="strong_wolfe")
    return impl.step_rule(p.lr, p.momentum)


def gradient_descent(impl: Implementation, p: TrainParams, rule: Rule, record: Record) -> bool:
    """Full batch: record J, stop if every gradient component is within train.tol, else step."""
    for t in range(p.iterations):
        record(t, impl.loss_and_grad())
        if _max_gradient(impl) <= p.tol:
            return True
        rule.step()
    return False


def stochastic_gradient_descent(impl: Implementation, p: TrainParams, rule: Rule, record: Record) -> bool:
    """Mini-batches of train.batch_size in an order shuffled by train.seed; an iteration is an epoch.

    J is recorded over all rows before each epoch; training stops once J changes by at most train.tol,
    relative, over an epoch. On several ranks train.batch_size is the global batch: every rank draws the
    same shuffle of all n rows, and each computes the part of a batch that falls in its shard, so that
    the steps are those of one process.
    """
    n, (start, stop) = impl.n, impl.ranks.shard(impl.n)
    generator = torch.Generator().manual_seed(p.seed)
    previous = math.inf
    for epoch in range(p.iterations):
        loss = objective_on_ranks(impl.X, impl.y, *impl.weights(), impl.l2, impl.n, impl.ranks)
        record(epoch, loss)
        if abs(previous - loss.item()) <= p.tol * max(1.0, abs(loss.item())):
            return True
        previous = loss.item()
        for rows in torch.randperm(n, generator=generator).to(impl.X.device).split(p.batch_size):
            mine = rows if impl.ranks.size == 1 else rows[(rows >= start) & (rows < stop)] - start
            impl.loss_and_grad(mine, len(rows))
            rule.step()
    return False


LBFGS_TOLERANCE_CHANGE = 1e-9
RESOLUTION = 32  # ulps of J a step must be predicted to gain; J's rounding error reaches ~10 on Iris


class LastEvaluation:
    """The closure torch.optim.LBFGS calls: `impl.loss_and_grad`, except at the point it evaluated last, where J
    and the gradients of that evaluation serve again. LBFGS evaluates J at the start of each step() although
    its line search has just evaluated that very point: without this, every iteration would cost one
    evaluation more. On several ranks every rank holds the same weights, so all make the same choice."""

    def __init__(self, impl: Implementation) -> None:
        self.impl = impl
        self.point: list[Tensor] | None = None
        self.grads: list[Tensor] = []
        self.loss: Tensor | None = None

    def __call__(self) -> Tensor:
        params = self.impl.params
        if self.point is not None and all(torch.equal(p, q) for p, q in zip(params, self.point, strict=True)):
            for p, grad in zip(params, self.grads, strict=True):
                p.grad = grad
            return self.loss
        self.loss = self.impl.loss_and_grad()
        self.point, self.grads = [p.detach().clone() for p in params], [p.grad for p in params]
        return self.loss


def lbfgs(impl: Implementation, p: TrainParams, optimizer: torch.optim.LBFGS, record: Record) -> bool:
    """torch.optim.LBFGS with a strong-Wolfe line search (`step_rule`), one of its iterations per train iteration.

    The line search chooses the step, so train.lr is not used. Stops once every gradient component is
    within train.tol, or when an iteration changes J by less than 1e-9 (torch's own tolerance_change):
    in float32 the line search can find no lower J before the gradient gets that small.

    It also stops, whatever train.tol, once a step could no longer be seen to pay: when the decrease it
    predicts, −∇J·d, is below RESOLUTION ulps of J in train.dtype. Past that point the line search judges
    steps by rounding noise, and in float32 the weights wander along the flattest directions of J (by
    ~1e-3 on Iris, while J stays put) — differently for each order of summation, so one process and N
    would end apart. All ranks hold the same averaged gradients, so they make the same decision.
    """
    group = optimizer.param_groups[0]
    state = optimizer.state[group["params"][0]]
    ulp = torch.finfo(impl.params[0].dtype).eps
    previous = math.inf
    closure = LastEvaluation(impl)
    for t in range(p.iterations):
        # LBFGS does not step when −∇J·d <= tolerance_change; J from the last iteration sets the scale.
        group["tolerance_change"] = 0.0 if t == 0 else RESOLUTION * ulp * abs(previous)
        group["lr"] = _first_step(closure) if t == 0 else 1.0
        evaluations = state.get("func_evals", 0)
        loss = optimizer.step(closure)
        record(t, loss)
        if state["func_evals"] == evaluations + 1:  # no line search: the weights did not move
            return True
        if p.tol and abs(previous - loss.item()) < LBFGS_TOLERANCE_CHANGE:
            return True
        previous = loss.item()
    return False


def _first_step(closure: LastEvaluation) -> float:
    """The lr that makes LBFGS's first trial step along −∇J 1/‖∇J‖₂ long, as scipy's L-BFGS-B takes it. torch's
    own, min(1, 1/‖∇J‖₁), can be √(number of weights) times shorter, and its line search then spends
    evaluations growing it. The closure's evaluation serves the step again (`LastEvaluation`)."""
    closure()
    grads = [q.grad for q in closure.impl.params]
    l1 = sum(g.abs().sum() for g in grads).item()
    l2 = math.sqrt(sum((g * g).sum() for g in grads).item())
    return 1.0 if l2 == 0.0 else (1.0 / l2) / min(1.0, 1.0 / l1)  # LBFGS's first step is lr·min(1, 1/‖∇J‖₁)


OPTIMIZERS: dict[Optimizer, Callable[[Implementation, TrainParams, Rule, Record], bool]] = {
    "gd": gradient_descent, "lbfgs": lbfgs, "sgd": stochastic_gradient_descent}


class _Stop(Exception):
    """Raised by `record` when the caller's callback asks to stop."""


Callback = Callable[[int, float, Callable[[], tuple[Tensor, Tensor]]], bool]


def fit(X: Tensor, y: Tensor, W0: Tensor, b0: Tensor, params: TrainParams,
        callback: Callback | None = None, ranks: Ranks = ONE) -> Fit:
    """Minimise J from (W0, b0) with params.impl and params.optimizer. X (m, d), y (m,): this rank's rows.

    `callback(iteration, loss, weights)` sees J at the start of every iteration, and `weights()` gives
    (W, b) there; returning True stops training.
    """
    setting_up = time.perf_counter()
    impl = IMPLEMENTATIONS[params.impl](X, y, W0, b0, params.l2, ranks, ranks.total(X.shape[0]))
    losses: list[float] = []

    def record(t: int, loss: Tensor) -> None:
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"training diverged at iteration {t}: the loss is {value} with "
                                   f"train.lr={params.lr}; try a smaller train.lr")
        losses.append(value)
        if callback is not None and callback(t, value, impl.weights):
            raise _Stop

    rule = step_rule(impl, params)
    start = time.perf_counter()
    try:
        converged = OPTIMIZERS[params.optimizer](impl, params, rule, record)
    except _Stop:
        converged = False
    W, b = impl.weights()
    if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
        raise TrainingDiverged(f"training diverged: the weights are not finite with train.lr={params.lr}; "
                               f"try a smaller train.lr")
    seconds = time.perf_counter() - start
    return Fit(W.cpu(), b.cpu(), torch.tensor(losses, dtype=torch.float64), converged, seconds,
               start - setting_up, impl.evaluations)


def _max_gradient(impl: Implementation) -> float:
    return max(p.grad.abs().max().item() for p in impl.params)
