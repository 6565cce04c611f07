"""Data parallelism's arithmetic: N processes (ranks), each holding a shard of the training rows.

Every rank keeps the same weights and computes its *share* of the objective over its own rows,

    J_r(W, b) = (N / n) Σ_{i in shard r} CE_i + l2·ΣW²        so that        mean_r J_r = J(W, b)

(n rows in all, N ranks), and likewise for the gradient. Averaging losses and gradients over the ranks,
which is what DistributedDataParallel does to gradients, gives every rank the full-batch J and ∇J, so
every rank takes the same step as one process would. One process is N = 1: no process group, and the
share is J itself. Starting the ranks is `launch`'s job; this module only adds up across them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


class PeerLost(RuntimeError):
    """A collective failed: most often because another rank died first, so this error is its echo."""


@contextmanager
def collective() -> Iterator[None]:
    """Mark a failure inside the block (an all-reduce, DistributedDataParallel's backward) as PeerLost.

    gloo reports a dead peer as a plain RuntimeError ("Connection closed by peer"); knowing where it was
    raised lets the launcher rank it below the error that started it.
    """
    try:
        yield
    except RuntimeError as e:
        if isinstance(e, PeerLost):
            raise
        raise PeerLost(" ".join(str(e).split())) from e


@dataclass(frozen=True)
class Ranks:
    """Which process this is among those training together. Ranks() is a single process."""

    rank: int = 0
    size: int = 1  # the world size, N
    local_rank: int = 0  # among the ranks on this machine: picks the GPU

    @property
    def leader(self) -> bool:
        """Rank 0: the one that reports progress and whose result is kept."""
        return self.rank == 0

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's rows [start, stop) of n: contiguous, shard sizes differing by at most one."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def collective(self) -> AbstractContextManager[None]:
        """`collective()` on several ranks; on one, nothing (an error there is nobody's echo)."""
        return collective() if self.size > 1 else nullcontext()

    def mean_(self, *tensors: Tensor) -> None:
        """Average each tensor over the ranks, in place, with one all-reduce (same dtype throughout)."""
        if self.size == 1:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        with collective():
            dist.all_reduce(flat)
        flat /= self.size
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
            t.copy_(part.view_as(t))

    def total(self, m: int) -> int:
        """Rows on all ranks, from this rank's m."""
        return int(self.sum_(torch.tensor([m])).item())

    def sum_(self, t: Tensor) -> Tensor:
        """Sum t over the ranks, in place; returns it."""
        if self.size > 1:
            with collective():
                dist.all_reduce(t)
        return t

    def max_(self, t: Tensor) -> Tensor:
        """Elementwise maximum of t over the ranks, in place; returns it."""
        if self.size > 1:
            with collective():
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t


ONE = Ranks()
