"""Every implementation with every optimizer: same seed and params, same numbers."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from softmax_regression.config import Impl, Optimizer, TrainParams, choices
from softmax_regression.data.tables import ROW_GROUP
from softmax_regression.errors import DataError, ParamError, TrainingDiverged
from softmax_regression.files import write_json
from softmax_regression.training.dataset import Dataset, read_dataset, read_scaling
from softmax_regression.training.gradients import IMPLEMENTATIONS
from softmax_regression.training.loop import device_for, progress_bar, train
from softmax_regression.training.model import initial_weights, objective, scaling_of, standardize
from softmax_regression.training.optimizers import OPTIMIZERS, fit

from conftest import write_table

PAIRS = list(itertools.combinations(sorted(IMPLEMENTATIONS), 2))
PAIR_IDS = [f"{a}-vs-{b}" for a, b in PAIRS]


def params(**changes) -> TrainParams:
    base = dict(impl="manual", iterations=250, lr=0.1, l2=0.01, seed=0, standardize=False)
    return TrainParams(**(base | changes))


def fit_all(X, y, n_classes, **changes):
    W0, b0 = initial_weights(X.shape[1], n_classes, changes.get("seed", 0), X.dtype)
    return {name: fit(X, y, W0, b0, params(impl=name, **changes)) for name in IMPLEMENTATIONS}


def assert_pair_agrees(fits, a, b, atol):
    for field in ("losses", "W", "b"):
        torch.testing.assert_close(getattr(fits[a], field), getattr(fits[b], field), rtol=0, atol=atol,
                                   msg=lambda m, field=field: f"{field}, {a} vs {b}: {m}")


@pytest.mark.parametrize("a,b", PAIRS, ids=PAIR_IDS)
def test_tutorial_gradient_descent_agrees_on_iris_in_float32(iris, a, b):
    X, y = iris
    assert_pair_agrees(fit_all(X.float(), y, 3), a, b, atol=1e-5)


@pytest.mark.parametrize("a,b", PAIRS, ids=PAIR_IDS)
def test_lbfgs_in_float32_stops_where_j_stops_resolving_and_the_implementations_agree(iris, a, b):
    X, y = iris
    Z = ((X - X.mean(0)) / X.std(0)).float()
    fits = fit_all(Z, y, 3, optimizer="lbfgs", iterations=100)
    assert fits[a].converged and len(fits[a].losses) == len(fits[b].losses) < 100
    assert_pair_agrees(fits, a, b, atol=1e-5)  # went on, the weights would wander apart by ~1e-3


def test_lbfgs_tries_scipys_first_step_and_then_evaluates_once_an_iteration(monkeypatch):
    """The first trial point is (W, b) − ∇J/‖∇J‖₂, as scipy's L-BFGS-B tries; after it, a line search
    mostly takes its first step, and no point is evaluated twice."""
    g = torch.Generator().manual_seed(7)
    y = torch.randint(0, 4, (2000,), generator=g)
    X = torch.randn(2000, 6, generator=g, dtype=torch.float64) + torch.randn(4, 6, generator=g, dtype=torch.float64)[y]
    W0, b0 = initial_weights(6, 4, 3, torch.float64)
    manual = IMPLEMENTATIONS["manual"]
    start = manual(X, y, W0, b0, 0.003)
    start.loss_and_grad()
    gradient = torch.cat([start.Wt.grad.T.flatten(), start.b.grad])
    tried = []
    evaluate = manual.loss_and_grad

    def recording(self, *args):
        tried.append(torch.cat([self.Wt.T.flatten(), self.b]).clone())
        return evaluate(self, *args)

    monkeypatch.setattr(manual, "loss_and_grad", recording)
    result = fit(X, y, W0, b0, params(optimizer="lbfgs", iterations=50, l2=0.003, tol=1e-9))
    torch.testing.assert_close(tried[1], tried[0] - gradient / gradient.norm(), rtol=0, atol=1e-12)
    assert result.converged and result.evaluations == len(tried) <= len(result.losses) + 2, len(result.losses)
    assert len({tuple(point.tolist()) for point in tried}) == len(tried), "a point evaluated twice"


@pytest.mark.parametrize("optimizer,changes,atol", [
    ("gd", dict(lr=0.5, momentum=0.9, iterations=100), 1e-10),
    ("sgd", dict(lr=0.2, batch_size=37, momentum=0.5, iterations=20), 1e-10),
    ("lbfgs", dict(iterations=30), 1e-6),  # its line search amplifies last-bit differences in the gradient
])
@pytest.mark.parametrize("a,b", PAIRS, ids=PAIR_IDS)
def test_every_optimizer_agrees_across_implementations_in_float64(a, b, optimizer, changes, atol):
    g = torch.Generator().manual_seed(7)
    X = torch.randn(300, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (300,), generator=g)
    fits = fit_all(X, y, 4, optimizer=optimizer, l2=0.003, seed=3, **changes)
    assert_pair_agrees(fits, a, b, atol=atol)


def test_losses_are_the_objective_before_each_step_and_decrease(iris):
    X, y = iris
    W0, b0 = initial_weights(4, 3, 0, torch.float64)
    result = fit(X, y, W0, b0, params(lr=0.01, iterations=50))  # lr 0.1 oscillates on unscaled Iris
    assert result.losses[0].item() == pytest.approx(objective(X, y, W0.T.contiguous(), b0, 0.01).item(), rel=1e-12)
    assert len(result.losses) == 50 and not result.converged
    assert (result.losses[1:] < result.losses[:-1]).all(), "full-batch descent with a small step must descend"


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_tolerance_stops_early(iris, optimizer):
    X, y = iris
    Z = (X - X.mean(0)) / X.std(0)
    W0, b0 = initial_weights(4, 3, 0, torch.float64)
    result = fit(Z, y, W0, b0, params(optimizer=optimizer, lr=0.5, tol=1e-4, iterations=100000, batch_size=30))
    assert result.converged and len(result.losses) < 100000


def test_training_is_bit_reproducible(iris):
    X, y = iris
    data = Dataset(X, y, ["a", "b", "c", "d"], ["x", "y", "z"])
    p = params(impl="nn", optimizer="sgd", iterations=5, standardize=True, seed=5)
    (m1, r1, _), (m2, r2, _) = train(data, p), train(data, p)
    assert torch.equal(m1.W, m2.W) and torch.equal(m1.b, m2.b) and torch.equal(r1.losses, r2.losses)
    m3, _, _ = train(data, params(impl="nn", optimizer="sgd", iterations=5, standardize=True, seed=6))
    assert not torch.equal(m1.W, m3.W), "another seed must draw other initial weights and shuffles"


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_divergence_stops_with_a_message_naming_the_iteration(iris, impl):
    X, y = iris
    W0, b0 = initial_weights(4, 3, 0, torch.float32)
    with pytest.raises(TrainingDiverged, match=r"diverged at iteration \d+.*train\.lr=1e\+30.*smaller"):
        fit(X.float() * 1e3, y, W0, b0, params(impl=impl, lr=1e30, iterations=50))


def test_unknown_choices_are_listed():
    with pytest.raises(ParamError, match=r"train\.impl must be one of \['autograd', 'manual', 'nn'\], got 'foo'"):
        params(impl="foo")
    with pytest.raises(ParamError, match=r"train\.optimizer must be one of \['gd', 'lbfgs', 'sgd'\], got 'adam'"):
        params(optimizer="adam")


def test_the_trainers_are_the_choices_params_allow():
    assert sorted(IMPLEMENTATIONS) == choices(Impl) and sorted(OPTIMIZERS) == choices(Optimizer)


def test_devices():
    assert device_for("cpu") == torch.device("cpu")
    assert device_for("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match=r"train\.device is 'cuda' but torch sees no CUDA device"):
            device_for("cuda")


def test_feature_scaling_matches_numpy_at_any_magnitude():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(100, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1e150, 1e300], dtype=torch.float64) + 5
    X[:, 0] = 2.0  # a constant feature
    mean, scale = scaling_of(X, standardize=True)
    unit = X.numpy() / abs(X.numpy()).max(axis=0)  # the reference, computed where it cannot overflow
    expected_std = unit.std(axis=0) * abs(X.numpy()).max(axis=0)
    torch.testing.assert_close(mean, torch.tensor(unit.mean(axis=0) * abs(X.numpy()).max(axis=0)))
    assert scale[0].item() == 1.0, "a constant feature is left unscaled"
    torch.testing.assert_close(scale[1:], torch.tensor(expected_std[1:]))
    assert torch.isfinite(mean).all() and torch.isfinite(scale).all()
    assert [t.tolist() for t in scaling_of(X, standardize=False)] == [[0.0] * 3, [1.0] * 3]


def test_a_split_file_read_streamed_gives_the_bits_of_the_rows_in_memory(tmp_path):
    # More rows than a block, in row groups that do not line up with the blocks: the scaling and the scaled
    # float32 features the train stage streams are those `train` computes from the whole float64 matrix.
    rng = np.random.default_rng(4)
    n = 2 * ROW_GROUP + 1234
    table = pd.DataFrame({"a": rng.normal(size=n) * 1e3 + 7, "b": rng.exponential(size=n),
                          "label": rng.integers(0, 3, n)})
    write_table(table, tmp_path / "t.parquet", row_group=50_000)
    write_json(tmp_path / "classes.json", {"label": "label", "classes": {"0": 0, "1": 1, "2": 2}})
    rows = (1000, n - 10)
    raw = read_dataset(tmp_path / "t.parquet", tmp_path / "classes.json", rows=rows)
    scaling = read_scaling(tmp_path / "t.parquet", tmp_path / "classes.json", rows)
    for ours, theirs in zip(scaling, scaling_of(raw.X, standardize=True), strict=True):
        assert torch.equal(ours, theirs)
    streamed = read_dataset(tmp_path / "t.parquet", tmp_path / "classes.json", rows=rows, dtype=torch.float32,
                            scaling=scaling)
    assert streamed.X.dtype == torch.float32 and torch.equal(streamed.y, raw.y)
    assert torch.equal(streamed.X, standardize(raw.X, *scaling, torch.float32))
    unscaled = read_dataset(tmp_path / "t.parquet", tmp_path / "classes.json", rows=rows, dtype=torch.float32)
    assert torch.equal(unscaled.X, raw.X.float())


def test_huge_features_train_when_standardised_and_are_named_when_not():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(60, 2, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    data = Dataset(X * 1e300, y, ["big", "bigger"], ["no", "yes"])
    model, result, _ = train(data, params(optimizer="lbfgs", iterations=50, standardize=True))
    assert torch.isfinite(result.losses).all() and result.losses[-1] < 0.5
    with pytest.raises(DataError, match=r"feature .big. has values too large for float32"):
        train(data, params(standardize=False))


ANOTHER_CPU = {"float32": 1e-6, "float64": 1e-12}  # README, "Same bits": how far another CPU's bits may go
EVERY_WAY = """
import json, sys, torch
from softmax_regression.config import Impl, Optimizer, TrainParams, choices
from softmax_regression.data.tables import ROW_GROUP
from softmax_regression.files import write_json
from softmax_regression.training.dataset import Dataset, read_dataset, read_scaling
from softmax_regression.training.loop import train
X, y = torch.load(sys.argv[1])
out = {"kernels": torch.backends.cpu.get_cpu_capability()}
for impl in ("autograd", "manual", "nn"):
    for dtype in ("float32", "float64"):
        p = TrainParams(impl=impl, iterations=250, lr=0.1, l2=0.01, seed=0, dtype=dtype)
        model, fit, _ = train(Dataset(X, y, ["a", "b", "c", "d"], ["x", "y", "z"]), p)
        out[impl + " " + dtype] = [fit.losses.tolist(), model.W.double().flatten().tolist()]
print(json.dumps(out))
"""


def every_way(X, y, tmp_path, **env) -> dict:
    torch.save((X, y), tmp_path / "iris.pt")
    result = subprocess.run([sys.executable, "-c", EVERY_WAY, str(tmp_path / "iris.pt")], capture_output=True,
                            text=True, env={**os.environ, **env}, check=True, timeout=300)
    return json.loads(result.stdout)


def test_a_cpu_without_avx2_agrees_within_the_stated_tolerance(iris, tmp_path):
    """torch's portable kernels (ATEN_CPU_CAPABILITY=default), what a CPU without AVX2 runs, against this
    CPU's own: every implementation in both dtypes, the tutorial's 250 steps on standardised Iris."""
    X, y = iris
    native, portable = every_way(X, y, tmp_path), every_way(X, y, tmp_path, ATEN_CPU_CAPABILITY="default")
    assert portable.pop("kernels") == "DEFAULT" and native.pop("kernels") != "DEFAULT"
    for way, (losses, W) in native.items():
        atol = ANOTHER_CPU[way.split()[1]]
        torch.testing.assert_close(torch.tensor(portable[way][0]), torch.tensor(losses), rtol=0, atol=atol,
                                   msg=lambda m, way=way: f"losses, {way}: {m}")
        torch.testing.assert_close(torch.tensor(portable[way][1]), torch.tensor(W), rtol=0, atol=atol,
                                   msg=lambda m, way=way: f"W, {way}: {m}")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_iteration_and_loss_on_a_terminal():
    stream = Terminal()
    with progress_bar(100, stream=stream) as bar:
        for t in range(3):
            bar.show(t, 0.5 / (t + 1))
        bar.refresh()
    text = stream.getvalue()
    assert "train" in text and "3/100" in text and "loss 0.166667" in text, text


def test_progress_is_silent_in_logs_and_on_other_ranks():
    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        with progress_bar(100, enabled=enabled, stream=stream) as bar:
            bar.show(0, 1.0)
        assert stream.getvalue() == ""
