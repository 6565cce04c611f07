"""Speed to the optimum, by optimizer: each implementation with gd, sgd and lbfgs against scikit-learn's
LogisticRegression at its defaults on the same float32 array, at 10⁴ and 10⁵ rows (10⁶ rows, at the limit, are
bench/limit.py's)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from common import (
    CLASSES,
    L2,
    objective_in_float64,
    peak_rss_mb,
    reset_peak_memory,
    sklearn_at_defaults,
    synthetic,
)

TARGET = 1e-5  # relative distance to scikit-learn's objective that counts as there
LEARNING_RATES = {"gd": 1.0, "sgd": 0.1, "lbfgs": 1.0}


@dataclass
class Row:
    n: int
    method: str  # "impl+optimizer" or "sklearn lbfgs"
    seconds_to_target: float | None  # None: not reached within the budget
    iterations: int | None
    final_objective: float | None
    seconds_per_epoch: float | None  # one full-batch loss-and-gradient evaluation and step (gd)
    peak_rss_mb: float


def sklearn_reference(X, y) -> tuple[float, Row]:
    """scikit-learn at its defaults (lbfgs, tol 1e-4) on the float32 array a user would pass; its J in float64."""
    reset_peak_memory()
    start = time.perf_counter()
    model = sklearn_at_defaults(X.numpy(), y.numpy())
    seconds = time.perf_counter() - start
    J = objective_in_float64(X.double(), y, model.coef_, model.intercept_)
    return J, Row(len(y), "sklearn lbfgs", seconds, int(model.n_iter_[0]), J, None, peak_rss_mb())


def race(X, y, impl: str, optimizer: str, target: float, budget: float) -> Row:
    """Time until J ≤ target·(1 + TARGET), or the budget runs out; for gd, the best epoch too."""
    from softmax_regression.config import TrainParams
    from softmax_regression.training.model import initial_weights
    from softmax_regression.training.optimizers import fit

    W0, b0 = initial_weights(X.shape[1], CLASSES, 0, X.dtype)
    params = TrainParams(impl=impl, optimizer=optimizer, iterations=1_000_000, lr=LEARNING_RATES[optimizer], l2=L2,
                         seed=0, batch_size=1000)
    reached: list[float] = []
    reset_peak_memory()
    start = time.perf_counter()

    def stop(t: int, loss: float, weights) -> bool:
        elapsed = time.perf_counter() - start
        if loss <= target * (1 + TARGET):
            reached.append(elapsed)
            return True
        return elapsed > budget

    result = fit(X, y, W0, b0, params, callback=stop)
    epoch = None
    if optimizer == "gd":
        few = TrainParams(impl=impl, iterations=3, lr=0.1, l2=L2, seed=0)
        epoch = min(fit(X, y, W0, b0, few).seconds / 3 for _ in range(3))
    return Row(len(y), f"{impl}+{optimizer}", reached[0] if reached else None, len(result.losses),
               result.losses[-1].item(), epoch, peak_rss_mb())


def run(sizes: tuple[int, ...] = (10_000, 100_000), budget: float = 10.0) -> dict:
    from softmax_regression.training.gradients import IMPLEMENTATIONS

    rows = []
    for n in sizes:
        X, y = synthetic(n)
        target, reference = sklearn_reference(X, y)
        rows.append(reference)
        for optimizer in LEARNING_RATES:
            for impl in sorted(IMPLEMENTATIONS):
                rows.append(race(X, y, impl, optimizer, target, budget))
                print(f"solvers: {rows[-1]}", flush=True)
    return {"target_relative": TARGET, "budget_s": budget, "l2": L2, "learning_rates": LEARNING_RATES,
            "sgd_batch_size": 1000, "rows": [asdict(r) for r in rows]}


def markdown(r: dict) -> str:
    lines = []
    for row in r["rows"]:
        reached = (f"{row['seconds_to_target']:.2f}" if row["seconds_to_target"] is not None
                   else f"not in {r['budget_s']:g} s")
        epoch = f"{1000 * row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] is not None else ""
        final = f"{row['final_objective']:.6f}" if row["final_objective"] is not None else ""
        lines.append(f"| {row['n']:,} | {row['method']} | {reached} | {row['iterations'] or ''} | {final} | {epoch} | "
                     f"{row['peak_rss_mb']:.0f} |")
    return "\n".join([
        "## Speed to the optimum, by optimizer",
        "",
        f"Synthetic data, 100 standardised features, 10 classes, l2 = {r['l2']:g}, float32. Each run stops when J is "
        f"within {r['target_relative']:g} (relative) of scikit-learn's `LogisticRegression` at its defaults (lbfgs, "
        f"tol 1e-4) on the same float32 array and objective, J computed in float64 for both, or after "
        f"{r['budget_s']:g} s. An epoch is one full-batch evaluation and step of gd.",
        "",
        "| n | method | to the optimum (s) | iterations | final J | epoch (ms) | peak RSS (MB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        *lines,
    ])
