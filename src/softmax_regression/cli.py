"""How a stage script runs: an expected failure is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from softmax_regression.errors import PipelineError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main. SIGTERM is treated like Ctrl-C, so that cleanup (an MLflow run marked KILLED,
    temporary files removed) happens either way."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; outputs written so far are complete, the rest untouched", file=sys.stderr)
        sys.exit(130)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
