"""Start the ranks of data-parallel training (see `ranks` for what they compute together).

`launch` runs a function on every rank. On one machine it starts the N processes itself (forked from a
fork server, with a rendezvous store on a free local port); under `torchrun`, which starts one process per
rank on each machine, this process is already a rank and joins the group torchrun set up.

When a rank fails, the others fail soon after: their next all-reduce finds a peer gone. The launcher
gives every rank a short, bounded time to end and report, then names the cause: a rank that died
without a word, else the earliest report that is not such an echo.
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
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from softmax_regression.errors import ParamError, PipelineError
from softmax_regression.files import atomic_path
from softmax_regression.parallel.ranks import ONE, PeerLost, Ranks

T = TypeVar("T")


def torchrun_rank(world_size: int) -> Ranks | None:
    """This process's place when `torchrun` started it (it sets RANK, WORLD_SIZE, LOCAL_RANK), else None.
    torchrun must have started train.world_size processes in all."""
    if "TORCHELASTIC_RUN_ID" not in os.environ and "RANK" not in os.environ:
        return None
    env = os.environ
    ranks = Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if ranks.size != world_size:
        raise ParamError(f"train.world_size is {world_size}, but torchrun started {ranks.size} "
                         f"processes (--nnodes × --nproc-per-node); make them equal")
    return ranks


def follower(world_size: int) -> bool:
    """Whether this process is a rank other than 0 under torchrun: it trains, and rank 0 reports."""
    ranks = torchrun_rank(world_size)
    return ranks is not None and not ranks.leader


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
    return _start_ranks(world_size, device, fn, args)


RESULT = "result.pickle"  # rank 0's return value, in the stage's private temporary folder
GRACE = 10.0  # seconds the other ranks get to end and report once one has failed


# What a rank's report holds, in the order of trust when naming a cause: a peer's echo comes last.
ERROR, TRACEBACK, ECHO = "error", "traceback", "echo"


def _start_ranks(world_size: int, device: torch.device, fn: Callable[..., T], args: tuple) -> T:
    # A fork server: one process that imports torch and fn's module, once per stage, and forks each rank from
    # that clean state, so a rank starts in milliseconds, not in the seconds a fresh interpreter spends
    # importing them. (Forking this process instead is unsafe: its torch may have started threads.) Where
    # there is none (Windows), each rank is a fresh interpreter.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = torch.multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["softmax_regression.parallel.forkserver", fn.__module__])  # as it starts
    else:
        context = torch.multiprocessing.get_context("spawn")
    # The rendezvous store lives here, on a port the system picks: no race for a free port.
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    threads = max(1, torch.get_num_threads() // world_size)  # share the cores, do not oversubscribe them
    with tempfile.TemporaryDirectory(prefix="softmax-regression-ranks-") as folder:
        processes = [context.Process(target=_rank_main, daemon=True,
                                     args=(Ranks(r, world_size, r), store.port, backend(device), threads,
                                           os.getpid(), folder, fn, args))
                     for r in range(world_size)]
        killed: set[int] = set()  # ranks stopped here: their end is not a cause
        try:
            for process in processes:
                process.start()
            _wait_for_ranks(processes)
        finally:  # after a failed rank, or Ctrl-C or SIGTERM here: none outlives the stage
            for rank, process in enumerate(processes):
                if process.is_alive():
                    process.kill()
                    killed.add(rank)
            for process in processes:
                if process.pid is not None:  # started: a start that failed leaves the rest unstarted
                    process.join()
        if any(p.exitcode != 0 for p in processes):
            raise PipelineError(_failure(processes, killed, Path(folder)))
        with open(Path(folder) / RESULT, "rb") as f:
            return pickle.load(f)


def _wait_for_ranks(processes: list, grace: float = GRACE) -> None:
    """Until every rank has ended; once one has failed, at most `grace` seconds more for the others.

    The failing rank writes its report before it exits, and its peers fail only once it is gone: so when
    a peer's echo ends first, the cause is still on its way out, and is waited for rather than cut off.
    """
    deadline = None
    while pending := [p for p in processes if p.exitcode is None]:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if timeout == 0.0:
            return
        multiprocessing.connection.wait([p.sentinel for p in pending], timeout)
        if deadline is None and any(p.exitcode not in (None, 0) for p in processes):
            deadline = time.monotonic() + grace


def _rank_main(ranks: Ranks, port: int, backend_name: str, threads: int, stage: int, folder: str,
               fn: Callable[..., Any], args: tuple) -> None:
    """One rank: join the group, run fn, leave rank 0's result in `folder`, or why it failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    _die_with(stage)
    torch.set_num_threads(threads)
    try:
        store = dist.TCPStore("127.0.0.1", port, ranks.size, is_master=False)
        dist.init_process_group(backend_name, store=store, rank=ranks.rank, world_size=ranks.size)
        result = fn(ranks, *args)
        dist.destroy_process_group()
        if ranks.leader:
            with atomic_path(Path(folder) / RESULT) as tmp, open(tmp, "wb") as f:
                pickle.dump(result, f)
    except PipelineError as e:  # expected: the message is the report
        _report(Path(folder), ranks.rank, ERROR, str(e))
        sys.exit(1)
    except PeerLost:  # most likely a peer died first; the traceback says where this rank was
        _report(Path(folder), ranks.rank, ECHO, traceback.format_exc())
        sys.exit(1)
    except Exception:  # a bug: the traceback is the report
        _report(Path(folder), ranks.rank, TRACEBACK, traceback.format_exc())
        sys.exit(1)


def _failure(processes: list, killed: set[int], folder: Path) -> str:
    """One line for the stage's error, naming the rank that caused the failure.

    A rank that ended badly by itself without a report (killed by a signal, a crash) is the cause: its
    exit says how. Otherwise the reports of every rank are ranked by kind, a peer's echo (a collective that
    failed) after anything else, then by the monotonic clock they were written at. A traceback, from an
    error we did not expect, is printed.
    """
    reports = [_read_report(path) for path in folder.glob("*.report")]
    reported = {report[2] for report in reports}
    world_size = len(processes)
    for rank, process in enumerate(processes):
        if process.exitcode not in (0, None) and rank not in reported and rank not in killed:
            how = (f"was killed by {signal.Signals(-process.exitcode).name}" if process.exitcode < 0
                   else f"exited with status {process.exitcode}")
            return f"rank {rank} of {world_size} {how}"
    if not reports:
        return f"rank {min(killed, default=0)} of {world_size} did not finish"
    kind, _, rank, text = min(reports, key=lambda r: (r[0] == ECHO, r[1], r[2]))
    if kind != ERROR:
        print(text, file=sys.stderr)
        text = text.strip().splitlines()[-1] + " (traceback above)"
    return f"rank {rank} of {world_size}: {text.strip()}"


def _report(folder: Path, rank: int, kind: str, text: str) -> None:
    """Why a rank failed: its kind, the time on the machine's monotonic clock (shared by its processes, and
    finer than file times), and the text. Written whole or not at all."""
    with atomic_path(folder / f"{rank}.report") as tmp:
        tmp.write_text(f"{kind} {time.monotonic_ns()}\n{text}")


def _read_report(path: Path) -> tuple[str, int, int, str]:
    """(kind, clock, rank, text) of a report file."""
    head, text = path.read_text().split("\n", 1)
    kind, clock = head.split()
    return kind, int(clock), int(path.stem), text


def _die_with(stage: int) -> None:
    """Linux: end this rank if the stage that started it dies, even by SIGKILL, not to leave it blocked on a
    collective with no peers. It dies with its parent: the fork server, which dies with the stage (or, spawned,
    the stage itself)."""
    if sys.platform != "linux":
        return
    die_with_parent()
    try:
        os.kill(stage, 0)
    except ProcessLookupError:  # it died before the server or this rank was tied to it
        os._exit(1)


def die_with_parent() -> None:
    """Linux: the kernel kills this process (SIGKILL) when the process that started it ends."""
    if sys.platform != "linux":
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
