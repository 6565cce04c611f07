"""Our optimum against scikit-learn's: the same objective, minimised by a mature solver.

    ours:    J(W, b) = mean_i CE_i + l2·ΣW²
    sklearn: C·Σ_i CE_i + ½‖W‖²  =  C·n · (mean_i CE_i + ‖W‖² / (2·C·n))   ⇒  C = 1 / (2·l2·n)

With two classes scikit-learn fits one logit v = w₁ − w₀; the softmax optimum is w₀ = −v/2, w₁ = v/2, whose
penalty is l2·‖v‖²/2, so there C = 1 / (l2·n).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from softmax_regression.config import TrainParams
from softmax_regression.training.dataset import Dataset
from softmax_regression.training.gradients import IMPLEMENTATIONS
from softmax_regression.training.loop import train
from softmax_regression.training.model import objective

RELATIVE = 1e-5  # float32 training allows little better


def sklearn_objective(Z: np.ndarray, y: np.ndarray, l2: float) -> float:
    """J at scikit-learn's optimum, evaluated by our objective in float64 on the same inputs."""
    n, k = len(y), len(np.unique(y))
    C = 1 / (l2 * n) if k == 2 else 1 / (2 * l2 * n)
    model = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100_000).fit(Z, y)
    if k == 2:
        v, c = model.coef_[0], model.intercept_[0]
        W, b = np.stack([-v / 2, v / 2], axis=1), np.array([-c / 2, c / 2])
    else:
        W, b = model.coef_.T, model.intercept_
    return objective(torch.tensor(Z), torch.tensor(y), torch.tensor(W.T.copy()), torch.tensor(b), l2).item()


def our_objective(data: Dataset, l2: float, **changes) -> tuple[float, np.ndarray]:
    p = TrainParams(**(dict(impl="manual", iterations=500, lr=0.5, l2=l2, seed=0, optimizer="lbfgs",
                            tol=1e-5) | changes))
    model, _, _ = train(data, p)
    Z = (data.X - model.mean) / model.scale  # float64, as scikit-learn sees it
    J = objective(Z, data.y, model.W.double().T.contiguous(), model.b.double(), l2).item()
    return J, Z.numpy()


def synthetic(n: int, d: int, k: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    centres = 1.5 * torch.randn(k, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    X = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    X = X * torch.logspace(-2, 3, d, dtype=torch.float64)  # features on very different scales
    return Dataset(X, y, [f"x{i}" for i in range(d)], [f"c{i}" for i in range(k)])


@pytest.fixture(scope="module")
def iris_data(iris) -> Dataset:
    X, y = iris
    return Dataset(X, y, ["sl", "sw", "pl", "pw"], ["setosa", "versicolor", "virginica"])


CASES = {
    "iris standardised": ("iris", True, 0.01),
    "iris raw (the tutorial's objective)": ("iris", False, 0.01),
    "iris weak penalty": ("iris", True, 1e-4),
    "5 classes, 12 features": (synthetic(600, 12, 5, seed=1), True, 0.01),
    "2 classes": (synthetic(400, 6, 2, seed=2), True, 0.003),
}


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_lbfgs_reaches_scikit_learns_optimum(iris_data, case, impl):
    data, standardize, l2 = CASES[case]
    data = iris_data if data == "iris" else data
    ours, Z = our_objective(data, l2, impl=impl, standardize=standardize)
    reference = sklearn_objective(Z, data.y.numpy(), l2)
    assert abs(ours - reference) / reference <= RELATIVE, f"{case}, {impl}: J {ours:.10f} vs sklearn {reference:.10f}"


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_enough_gradient_descent_on_standardised_iris_reaches_it_too(iris_data, impl):
    ours, Z = our_objective(iris_data, 0.01, impl=impl, optimizer="gd", iterations=3000, lr=0.5, tol=0.0,
                            standardize=True)
    reference = sklearn_objective(Z, iris_data.y.numpy(), 0.01)
    assert abs(ours - reference) / reference <= RELATIVE, f"{impl}: J {ours:.10f} vs sklearn {reference:.10f}"


def test_the_implementations_agree_at_the_optimum(iris_data):
    values = {impl: our_objective(iris_data, 0.01, impl=impl)[0] for impl in IMPLEMENTATIONS}
    for a, b in itertools.combinations(sorted(values), 2):
        assert abs(values[a] - values[b]) / values[a] <= RELATIVE, f"{a} vs {b}: {values[a]} vs {values[b]}"
