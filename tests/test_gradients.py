"""The hand-derived gradient against autograd and finite differences, in float64; stable math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softmax_regression.training.gradients import manual_loss_and_gradients
from softmax_regression.training.model import EVALUATION_BLOCK, initial_weights, objective


def random_problem(n: int, d: int, k: int, seed: int, scale: float = 1.0):
    """X (n, d), y (n,), Wᵀ (k, d) and b (k,) in float64."""
    g = torch.Generator().manual_seed(seed)
    X = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    Wt = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return X, y, Wt, b


def autograd_gradients(X, y, Wt, b, l2):
    Wt, b = Wt.clone().requires_grad_(), b.clone().requires_grad_()
    loss = objective(X, y, Wt, b, l2)
    dWt, db = torch.autograd.grad(loss, (Wt, b))
    return loss.detach(), dWt, db


@pytest.mark.parametrize("n,d,k,seed,l2", [(50, 3, 2, 0, 0.0), (200, 7, 5, 1, 0.01), (9, 20, 11, 2, 0.5),
                                           (2 * EVALUATION_BLOCK + 123, 4, 3, 5, 0.01)])
def test_manual_gradient_equals_autograd_on_random_data(n, d, k, seed, l2):
    X, y, W, b = random_problem(n, d, k, seed)
    loss, dW, db = manual_loss_and_gradients(X, y, W, b, l2)
    ref_loss, ref_dW, ref_db = autograd_gradients(X, y, W, b, l2)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-10)
    torch.testing.assert_close(dW, ref_dW, rtol=0, atol=1e-10)
    torch.testing.assert_close(db, ref_db, rtol=0, atol=1e-10)


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_manual_gradient_equals_autograd_on_iris(iris, l2):
    X, y = iris
    W, b = initial_weights(X.shape[1], 3, seed=0, dtype=torch.float64)
    Wt, b = W.T.contiguous() + 0.3, b - 0.1  # away from the symmetric start, where gradients are special
    loss, dW, db = manual_loss_and_gradients(X, y, Wt, b, l2)
    ref_loss, ref_dW, ref_db = autograd_gradients(X, y, Wt, b, l2)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-10)
    torch.testing.assert_close(dW, ref_dW, rtol=0, atol=1e-10)
    torch.testing.assert_close(db, ref_db, rtol=0, atol=1e-10)


def test_objective_gradient_matches_finite_differences():
    X, y, W, b = random_problem(30, 4, 3, seed=3)
    assert torch.autograd.gradcheck(lambda W, b: objective(X, y, W, b, 0.05),
                                    (W.requires_grad_(), b.requires_grad_()))


def test_objective_matches_torch_cross_entropy_plus_penalty():
    X, y, W, b = random_problem(40, 5, 4, seed=4)
    expected = F.cross_entropy(X @ W.T + b, y) + 0.3 * W.pow(2).sum()
    torch.testing.assert_close(objective(X, y, W, b, 0.3), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_logits_give_finite_loss_and_gradients(dtype, sign):
    X = torch.tensor([[1.0], [-1.0], [0.5]], dtype=dtype)
    y = torch.tensor([0, 1, 1])
    W = sign * torch.tensor([[1e4], [-1e4]], dtype=dtype)  # Wᵀ (2 classes, 1 feature): logits of ±1e4
    b = torch.zeros(2, dtype=dtype)
    loss, dW, db = manual_loss_and_gradients(X, y, W, b, l2=0.0)
    assert torch.isfinite(loss) and torch.isfinite(dW).all() and torch.isfinite(db).all()
    ref_loss, ref_dW, ref_db = autograd_gradients(X, y, W, b, 0.0)
    assert torch.isfinite(ref_loss) and torch.isfinite(ref_dW).all()
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(dW, ref_dW)
    torch.testing.assert_close(db, ref_db)
    # With sign = +1 rows 1 and 2 are right by a margin of 2e4 (loss ~0) and row 3 (logits 5e3, -5e3,
    # class 1) is wrong by 1e4, which is then its loss: the mean is 1e4 / 3, not inf.
    if sign > 0:
        assert loss.item() == pytest.approx(1e4 / 3, rel=1e-6)
