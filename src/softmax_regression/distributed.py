"""Data parallelism with torch.distributed: N processes (ranks), each holding a shard of the training rows.

Every rank keeps the same weights and computes its *share* of the objective over its own rows,

    J_r(W, b) = (N / n) Σ_{i in shard r} CE_i + l2·ΣW²        so that        mean_r J_r = J(W, b)

(n rows in all, N ranks), and likewise for the gradient. Averaging losses and gradients over the ranks,
which is what DistributedDataParallel does to gradients, gives every rank the full-batch J and ∇J, so
every rank takes the same step as one process would. One process is N = 1: no process group, and the
share is J itself.

`launch` runs a function on every rank. On one machine it starts the N processes itself (spawned, with
a rendezvous store on a free local port); under `torchrun`, which starts one process per rank on each
machine, this process is already a rank and joins the group torchrun set up.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from softmax_regression.errors import ParamError, PipelineError

T = TypeVar("T")


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

    def mean_(self, *tensors: Tensor) -> None:
        """Average each tensor over the ranks, in place, with one all-reduce (same dtype throughout)."""
        if self.size == 1:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
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
            dist.all_reduce(t)
        return t

    def max_(self, t: Tensor) -> Tensor:
        """Elementwise maximum of t over the ranks, in place; returns it."""
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t


ONE = Ranks()


def torchrun_rank(world_size: int) -> Ranks | None:
    """This process's place when `torchrun` started it (it sets RANK, WORLD_SIZE, LOCAL_RANK), else None.
    torchrun must have started train.world_size processes in all."""
    if "TORCHELASTIC_RUN_ID" not in os.environ and "RANK" not in os.environ:
        return None
    env = os.environ
    ranks = Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if ranks.size != world_size:
        raise ParamError(f"params.yaml: train.world_size is {world_size}, but torchrun started {ranks.size} "
                         f"processes (--nnodes × --nproc-per-node); make them equal")
    return ranks


def backend(device: torch.device) -> str:
    """gloo on CPU; on GPU nccl for CUDA tensors, with gloo for the few CPU ones (row counts, scaling)."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def launch(world_size: int, device: torch.device, fn: Callable[..., T], *args: Any) -> T | None:
    """fn(ranks, *args) on each of world_size ranks; returns rank 0's result (None on other ranks).

    With world_size 1 fn runs here. Under torchrun this process is one rank. Otherwise world_size
    processes start here, and a rank that fails stops them all: its message is raised as a
    PipelineError, and no process is left running.
    """
    ranks = torchrun_rank(world_size)
    if ranks is not None:
        dist.init_process_group(backend(device), init_method="env://", rank=ranks.rank, world_size=ranks.size)
        try:
            result = fn(ranks, *args)
        finally:
            dist.destroy_process_group()
        return result if ranks.leader else None
    if world_size == 1:
        return fn(ONE, *args)
    return _spawn(world_size, device, fn, args)


RESULT = "result.pickle"  # rank 0's return value, in the stage's private temporary folder


def _spawn(world_size: int, device: torch.device, fn: Callable[..., T], args: tuple) -> T:
    context = torch.multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    # The rendezvous store lives here, on a port the system picks: no race for a free port.
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    threads = max(1, torch.get_num_threads() // world_size)  # share the cores, do not oversubscribe them
    with tempfile.TemporaryDirectory(prefix="softmax-regression-ranks-") as folder:
        processes = [context.Process(target=_rank_main, daemon=True,
                                     args=(Ranks(r, world_size, r), store.port, backend(device), threads,
                                           os.getpid(), folder, fn, args))
                     for r in range(world_size)]
        failed: list[tuple[int, Any]] = []  # the ranks that ended badly by themselves, not killed below
        try:
            for process in processes:
                process.start()
            pending = list(processes)
            while pending and not failed:
                multiprocessing.connection.wait([p.sentinel for p in pending])
                pending = [p for p in pending if p.exitcode is None]
                failed = [(rank, p) for rank, p in enumerate(processes) if p.exitcode not in (None, 0)]
        finally:  # after a failed rank, or Ctrl-C or SIGTERM here: none outlives the stage
            for process in processes:
                if process.is_alive():
                    process.kill()
            for process in processes:
                if process.pid is not None:  # started: a start that failed leaves the rest unstarted
                    process.join()
        if failed:
            raise PipelineError(_failure(failed, Path(folder), world_size))
        with open(Path(folder) / RESULT, "rb") as f:
            return pickle.load(f)


def _rank_main(ranks: Ranks, port: int, backend_name: str, threads: int, parent: int, folder: str,
               fn: Callable[..., Any], args: tuple) -> None:
    """One spawned rank: join the group, run fn, leave rank 0's result in `folder`, or why it failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    _die_with(parent)
    torch.set_num_threads(threads)
    try:
        store = dist.TCPStore("127.0.0.1", port, ranks.size, is_master=False)
        dist.init_process_group(backend_name, store=store, rank=ranks.rank, world_size=ranks.size)
        result = fn(ranks, *args)
        dist.destroy_process_group()
        if ranks.leader:
            with open(Path(folder) / RESULT, "wb") as f:
                pickle.dump(result, f)
    except PipelineError as e:  # expected: the message is the report
        _report(Path(folder) / f"{ranks.rank}.error", str(e))
        sys.exit(1)
    except Exception:  # a bug, or a peer gone: the traceback is the report
        _report(Path(folder) / f"{ranks.rank}.traceback", traceback.format_exc())
        sys.exit(1)


def _failure(failed: list[tuple[int, Any]], folder: Path, world_size: int) -> str:
    """One line for the stage's error, from the ranks that had ended badly when the first failure was
    seen; the others were stopped, and what they were writing is an echo (a peer gone in the middle of an
    all-reduce). A rank that left no report was killed or crashed, which is then the cause: its exit says
    how. Otherwise the report written first; a traceback, from an error we did not expect, is printed."""
    reports = {rank: path for rank, _ in failed
               for path in (folder / f"{rank}.error", folder / f"{rank}.traceback") if path.exists()}
    silent = [(rank, process) for rank, process in failed if rank not in reports]
    if silent:
        rank, process = silent[0]
        how = (f"was killed by {signal.Signals(-process.exitcode).name}" if process.exitcode < 0
               else f"exited with status {process.exitcode}")
        return f"rank {rank} of {world_size} {how}"
    written = {rank: path.read_text().split("\n", 1) for rank, path in reports.items()}
    rank = min(written, key=lambda r: (int(written[r][0]), r))
    first, text = reports[rank], written[rank][1].strip()
    if first.suffix == ".traceback":
        print(text, file=sys.stderr)
        text = text.splitlines()[-1] + " (traceback above)"
    return f"rank {rank} of {world_size}: {text}"


def _report(path: Path, text: str) -> None:
    """Why a rank failed, after the time it happened on the machine's monotonic clock (shared by its
    processes, and finer than file times), which orders the ranks' reports."""
    path.write_text(f"{time.monotonic_ns()}\n{text}")


def _die_with(parent: int) -> None:
    """Linux: end this process if the stage that started it dies, even by SIGKILL, not to leave it blocked
    on a collective with no peers."""
    if sys.platform != "linux":
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
