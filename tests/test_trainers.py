"""The three implementations minimise one objective: same seed and params, same numbers."""

from __future__ import annotations

import itertools

import pytest
import torch

from softmax_regression.config import TrainParams
from softmax_regression.dataset import Dataset
from softmax_regression.errors import ParamError, TrainingDiverged
from softmax_regression.model import initial_weights, objective
from softmax_regression.trainers import TRAINERS, trainer
from softmax_regression.training import train

PAIRS = list(itertools.combinations(sorted(TRAINERS), 2))


def fit_all(X, y, n_classes, lr, l2, iterations, seed=0):
    W0, b0 = initial_weights(X.shape[1], n_classes, seed, X.dtype)
    return {name: fit(X, y, W0, b0, lr, l2, iterations) for name, fit in TRAINERS.items()}


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_implementations_agree_on_iris_in_float32(iris, a, b):
    X, y = iris
    fits = fit_all(X.float(), y, 3, lr=0.1, l2=0.01, iterations=250)
    torch.testing.assert_close(fits[a].losses, fits[b].losses, rtol=0, atol=1e-5,
                               msg=lambda m: f"loss history, {a} vs {b}: {m}")
    torch.testing.assert_close(fits[a].W, fits[b].W, rtol=0, atol=1e-5, msg=lambda m: f"W, {a} vs {b}: {m}")
    torch.testing.assert_close(fits[a].b, fits[b].b, rtol=0, atol=1e-5, msg=lambda m: f"b, {a} vs {b}: {m}")


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_implementations_agree_on_random_data_in_float64(a, b):
    g = torch.Generator().manual_seed(7)
    X = torch.randn(300, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (300,), generator=g)
    fits = fit_all(X, y, 4, lr=0.5, l2=0.003, iterations=100, seed=3)
    torch.testing.assert_close(fits[a].losses, fits[b].losses, rtol=0, atol=1e-10)
    torch.testing.assert_close(fits[a].W, fits[b].W, rtol=0, atol=1e-10)


def test_losses_are_the_objective_before_each_step_and_decrease(iris):
    X, y = iris
    W0, b0 = initial_weights(4, 3, 0, torch.float64)
    fit = TRAINERS["manual"](X, y, W0, b0, 0.01, 0.01, 50)  # lr 0.1 oscillates on unscaled Iris
    assert fit.losses[0].item() == pytest.approx(objective(X, y, W0, b0, 0.01).item(), rel=1e-12)
    assert len(fit.losses) == 50
    assert (fit.losses[1:] < fit.losses[:-1]).all(), "full-batch descent with a small step must descend"


def test_training_is_bit_reproducible(iris):
    X, y = iris
    data = Dataset(X.float(), y, ["a", "b", "c", "d"], ["x", "y", "z"])
    params = TrainParams(impl="nn", iterations=30, lr=0.1, l2=0.01, seed=5)
    (m1, l1), (m2, l2) = train(data, params), train(data, params)
    assert torch.equal(m1.W, m2.W) and torch.equal(m1.b, m2.b) and torch.equal(l1, l2)
    (m3, _) = train(data, TrainParams(impl="nn", iterations=30, lr=0.1, l2=0.01, seed=6))
    assert not torch.equal(m1.W, m3.W), "another seed must draw other initial weights"


@pytest.mark.parametrize("impl", sorted(TRAINERS))
def test_divergence_stops_with_a_message_naming_the_iteration(iris, impl):
    X, y = iris
    W0, b0 = initial_weights(4, 3, 0, torch.float32)
    with pytest.raises(TrainingDiverged, match=r"diverged at iteration \d+.*train\.lr=1e\+30.*smaller"):
        TRAINERS[impl](X.float() * 1e3, y, W0, b0, 1e30, 0.01, 50)


def test_unknown_implementation_lists_the_choices():
    with pytest.raises(ParamError, match=r"train\.impl must be one of \['autograd', 'manual', 'nn'\], got 'foo'"):
        trainer("foo")
