"""From a dataset to a fitted model: scale, train, and describe the result, on one rank or several."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import torch
from torch import Tensor
from tqdm import tqdm

from softmax_regression import paths
from softmax_regression.config import TrainParams
from softmax_regression.data.tables import parquet_rows
from softmax_regression.errors import DataError, ParamError
from softmax_regression.parallel.launch import launch
from softmax_regression.parallel.ranks import ONE, Ranks
from softmax_regression.training.dataset import Dataset, read_dataset, read_scaling
from softmax_regression.training.metrics import correct, negative_log_likelihood
from softmax_regression.training.model import (
    BLOCK,
    Model,
    initial_weights,
    no_scaling,
    objective_on_ranks,
    probabilities,
    scaling_of,
    standardize,
)
from softmax_regression.training.optimizers import Fit, fit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def device_for(name: str, local_rank: int = 0) -> torch.device:
    """train.device as a torch device: `auto` is CUDA when there is one, else the CPU. On CUDA each rank
    on a machine takes a GPU of its own."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device is 'cuda' but torch sees no CUDA device; use cpu or auto")
    if name == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ParamError(f"train.device is 'cuda' with more ranks on this machine than its "
                             f"{torch.cuda.device_count()} GPUs; lower train.world_size or use cpu")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def kernel_level() -> str:
    """The CPU kernels torch runs ("AVX2", "AVX512", "DEFAULT"…): the level a float's last bits depend on."""
    return torch.backends.cpu.get_cpu_capability()


class progress_bar(tqdm):  # noqa: N801 - used as a function
    """Iteration and loss on one updating terminal line, a few times a second; silent when `stream` is not
    a terminal (CI, DVC's queue logs), so logs hold no carriage-return noise."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO = sys.stderr) -> None:
        super().__init__(total=total, desc="train", unit="it", file=stream, mininterval=0.5,
                         disable=not (enabled and stream.isatty()), leave=True, dynamic_ncols=True)

    def show(self, iteration: int, loss: float) -> None:
        """The callback `train` calls at each iteration (0-based) with J."""
        self.set_postfix_str(f"loss {loss:.6f}", refresh=False)
        self.update(iteration + 1 - self.n)


@dataclass
class Curves:
    """Log-loss (mean cross-entropy, no penalty) on train and validation rows every train.eval_every
    iterations. Never on test rows: they are for the final report alone. Without validation rows,
    `val_log_loss` stays empty."""

    iteration: list[int] = field(default_factory=list)
    train_log_loss: list[float] = field(default_factory=list)
    val_log_loss: list[float] = field(default_factory=list)

    def add(self, iteration: int, train_log_loss: float, val_log_loss: float | None = None) -> None:
        self.iteration.append(iteration)
        self.train_log_loss.append(train_log_loss)
        if val_log_loss is not None:
            self.val_log_loss.append(val_log_loss)

    def rows(self) -> list[tuple[int, float, float | str]]:
        """(iteration, train, validation) rows; the validation cell is empty when there are no such rows."""
        val = self.val_log_loss or [""] * len(self.iteration)
        return list(zip(self.iteration, self.train_log_loss, val, strict=True))


@dataclass(frozen=True)
class Trained:
    """What a rank brings back from training: the same on every rank."""

    model: Model
    fit: Fit
    curves: Curves
    metrics: dict[str, float]  # train_metrics, the iterations run and whether train.tol stopped them
    seconds: float  # training time (the iterations): reading and scaling the data, starting processes and
    #                 setting up the optimizer (`Fit.setup_seconds`) excluded

    def summary(self, params: TrainParams) -> str:
        """One line: what was trained, how long it took, how well it fits the training rows."""
        ranks = "" if params.world_size == 1 else f" on {params.world_size} ranks"
        return (f"{params.impl}+{params.optimizer}, {len(self.fit.losses)} iterations{ranks} in {self.seconds:.2f} s, "
                f"train accuracy {self.metrics['train_accuracy']:.4f}, final loss "
                f"{self.metrics['train_loss_final']:.6f}")


def train_split(params: TrainParams) -> Trained | None:
    """The train stage's training: the split's training rows on train.world_size ranks (`parallel.launch`),
    the validation rows watched. Returns rank 0's result, None on the other ranks under torchrun."""
    device = device_for(params.device)
    return launch(params.world_size, device, train_shard, params, paths.TRAIN, paths.VAL, paths.CLASSES)


def train_shard(ranks: Ranks, params: TrainParams, train_file: str | Path, val_file: str | Path,
                classes_file: str | Path, show_progress: bool = True) -> Trained:
    """One rank's part of training: read its shard of the train and validation rows, train, measure.

    What `launch.launch` runs on every rank; with one rank the shard is every row. The rows are read
    straight into the training dtype, scaled as they come when params.standardize is set (the scaling from
    a first pass over the train rows), so that the peak is the matrix in that dtype and a few blocks. The
    leader shows the progress line on a terminal, unless `show_progress` is false.
    """
    n, n_val = parquet_rows(train_file), parquet_rows(val_file)
    dtype, rows = DTYPES[params.dtype], ranks.shard(n)
    scaling = read_scaling(train_file, classes_file, rows, ranks) if params.standardize else None
    data = read_dataset(train_file, classes_file, rows=rows, dtype=dtype, scaling=scaling)
    val = (read_dataset(val_file, classes_file, features=data.features, rows=ranks.shard(n_val), dtype=dtype,
                        scaling=scaling) if n_val else None)
    with progress_bar(params.iterations, enabled=ranks.leader and show_progress) as bar:
        start = time.perf_counter()
        with deterministic():
            model, result, curves = train_inputs(data, scaling or no_scaling(len(data.features)), params, val,
                                                 bar.show, ranks)
        seconds = time.perf_counter() - start - result.setup_seconds
    metrics = train_metrics(model, data, params.l2, ranks)
    metrics |= {"iterations_run": len(result.losses), "converged": int(result.converged)}
    return Trained(model, result, curves, metrics, seconds)


def train(data: Dataset, params: TrainParams, val: Dataset | None = None,
          progress: Callable[[int, float], None] | None = None, ranks: Ranks = ONE
          ) -> tuple[Model, Fit, Curves]:
    """Fit with params.impl and params.optimizer from the seeded initial weights, on raw features in memory.
    On several ranks, `data` and `val` are this rank's shards, and every collective below runs on all of them.

    The features are standardised with the train rows' statistics when params.standardize is set, in the
    training dtype (X itself when that changes nothing). With params.eval_every, the log-loss on the training
    rows, and on the validation rows `val` when given, is recorded along the way; `progress(iteration, loss)`
    is told of every iteration.
    """
    with deterministic():
        scaling, dtype = scaling_of(data.X, params.standardize, ranks), DTYPES[params.dtype]
        inputs = [None if d is None else replace(d, X=standardize(d.X, *scaling, dtype)) for d in (data, val)]
        return train_inputs(inputs[0], scaling, params, inputs[1], progress, ranks)


@contextmanager
def deterministic() -> Iterator[None]:
    """Same params and seed, same bits: torch's deterministic algorithms for the block, as they were after it.
    (torch.use_deterministic_algorithms(True) sets the same flag, but also imports torch._inductor, for
    torch.compile alone: 1.4 s.)"""
    previous = torch.get_deterministic_debug_mode()
    torch.set_deterministic_debug_mode("error")
    try:
        yield
    finally:
        torch.set_deterministic_debug_mode(previous)


def train_inputs(data: Dataset, scaling: tuple[Tensor, Tensor], params: TrainParams, val: Dataset | None = None,
                 progress: Callable[[int, float], None] | None = None, ranks: Ranks = ONE
                 ) -> tuple[Model, Fit, Curves]:
    """`train` on the model's inputs: `data` and `val` hold features already scaled by `scaling` (mean,
    scale) and in the training dtype."""
    device = device_for(params.device, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # this rank's GPU, for nccl and DistributedDataParallel
    _check_representable(data.X, data.features, params.dtype)
    X, y = data.X.to(device), data.y.to(device)
    curves = Curves()
    watch = []
    if params.eval_every:
        watch = [(X, y, ranks.total(len(y)))]
        if val is not None:
            watch.append((val.X.to(device), val.y.to(device), ranks.total(len(val.y))))

    def record(W: Tensor, b: Tensor, t: int) -> None:  # the mean cross-entropy: J without the penalty
        curves.add(t, *(objective_on_ranks(Xw, yw, W, b, 0.0, n, ranks).item() for Xw, yw, n in watch))

    def monitor(t: int, loss: float, weights: Callable[[], tuple[Tensor, Tensor]]) -> bool:
        if progress is not None:
            progress(t, loss)
        if watch and t % params.eval_every == 0:
            record(*weights(), t)
        return False

    W0, b0 = initial_weights(X.shape[1], len(data.classes), params.seed, X.dtype)
    result = fit(X, y, W0.to(device), b0.to(device), params, callback=monitor, ranks=ranks)
    if watch:
        record(result.W.to(device), result.b.to(device), len(result.losses))  # the final weights
    return Model(result.W, result.b, data.features, data.classes, *scaling), result, curves


def train_metrics(model: Model, inputs: Dataset, l2: float, ranks: Ranks = ONE) -> dict[str, float]:
    """The final objective and the fit on the training rows (of every rank), from the model's inputs (the
    scaled features), a block of rows at a time."""
    n = ranks.total(len(inputs.y))
    W, b = model.W.to(inputs.X.device), model.b.to(inputs.X.device)
    loss = objective_on_ranks(inputs.X, inputs.y, W, b, l2, n, ranks)
    sums = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for Z, y in zip(inputs.X.split(BLOCK), inputs.y.split(BLOCK), strict=True):
            P = probabilities(Z, W, b)
            sums += torch.tensor([correct(P, y), negative_log_likelihood(P, y)], dtype=torch.float64)
    ranks.sum_(sums)
    return {"train_loss_final": loss.item(), "train_log_loss": sums[1].item() / n,
            "train_accuracy": sums[0].item() / n}


def _check_representable(X: torch.Tensor, features: list[str], dtype: str) -> None:
    # An inf or NaN makes the sum of its column, and of X, non-finite: one read of X when all is well, then
    # the columns' sums, and the (slow) elementwise check of the suspect columns alone.
    if torch.isfinite(X.sum()):
        return
    suspects = (~torch.isfinite(X.sum(dim=0))).nonzero().flatten().tolist()
    bad = [j for j in suspects if not torch.isfinite(X[:, j]).all()]
    if bad:
        raise DataError(f"feature {features[bad[0]]!r} has values too large for {dtype}; set "
                        f"train.standardize: true or train.dtype: float64")
