"""How a stage or a command runs: an expected failure is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable

from softmax_regression import interrupts, runtime
from softmax_regression.errors import PipelineError

INTERRUPTED = "error: interrupted; outputs written so far are complete, the rest untouched"


def run_main(main: Callable[[], None]) -> None:
    """Run a stage's or a command's main in the settled environment (`runtime`). SIGTERM is treated like
    Ctrl-C, so that cleanup (an MLflow run marked KILLED, temporary files removed) happens either way, and
    neither lands in the middle of a call to MLflow (`interrupts`). Once main is done, the process exits at
    once (`exit_now`)."""
    runtime.settle()
    interrupts.install()
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        exit_now(1)
    except BaseException as e:
        if not interrupts.interrupted(e):
            raise
        print(INTERRUPTED, file=sys.stderr)
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
