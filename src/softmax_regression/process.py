"""How a stage script runs: an expected failure is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Callable, Sequence

from softmax_regression import interrupts
from softmax_regression.errors import PipelineError, interrupted

# Set before MLflow is imported (it reads them then): nothing phones home, and a server that does not answer
# fails the stage in seconds, not after minutes of retries. A user's own settings win.
OFFLINE = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main, offline, with the CPU kernels held at one level (`cpu_kernels`). SIGTERM is
    treated like Ctrl-C, so that cleanup (an MLflow run marked KILLED, temporary files removed) happens
    either way, and neither lands in the middle of a call to MLflow (`interrupts`). Once main is done, the
    process exits at once (`exit_now`)."""
    for key, value in {**OFFLINE, **cpu_kernels()}.items():
        os.environ.setdefault(key, value)
    interrupts.install()
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        exit_now(1)
    except BaseException as e:
        if not interrupted(e):
            raise
        print("error: interrupted; outputs written so far are complete, the rest untouched", file=sys.stderr)
        exit_now(130)
    exit_now(0)


def exit_now(code: int) -> None:
    """Exit as Python would, but without tearing down every module it imported: with torch and MLflow that
    takes 1.5–2 s, ten times what training Iris does. What the process owes the world still happens: the
    exit handlers (logging's, MLflow's, multiprocessing's, temporary files'; `atexit._run_exitfuncs` is
    how the interpreter runs them) and the output streams' flushes. Every file a stage writes is closed
    by then, in its own `with`."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under a header and a rule, each column as wide as its widest cell: the tables `make compare`
    and `make promote` print."""
    cells = [[str(c) for c in row] for row in [columns, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def server_arguments(module: str, doc: str | None, port: int, argv: list[str] | None = None) -> argparse.Namespace:
    """--host and --port of a command that serves on this machine (`make ui`, `make serve`)."""
    parser = argparse.ArgumentParser(prog=f"python -m softmax_regression.{module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="(default: %(default)s)")
    return parser.parse_args(argv)


def cpu_kernels(cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """Settings that give the same float bits on every x86-64 CPU with AVX2 and FMA.

    torch's kernels add up in vector lanes, 8 floats with AVX2 and 16 with AVX-512, so a sum's last bits
    depend on the CPU. Holding torch (ATEN_CPU_CAPABILITY) and MKL (MKL_CBWR) at the AVX2 level where the
    CPU has it makes every such CPU run the same instructions. They are read at the first tensor operation
    and the first MKL call, so setting them before either is enough. Never asked of a CPU without AVX2:
    torch would run instructions the CPU does not have. Elsewhere (no AVX2, another architecture) nothing
    is set, and the bits may differ in the last place (README, "Same bits").
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux
        return {}
    return {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"} if {"avx2", "fma"} <= set(flags) else {}
