"""How a stage script runs: an expected failure is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import TextIO

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


class Progress:
    """Iteration and loss on one updating terminal line, a few times a second; silent when not a terminal
    (CI, DVC queue logs), so logs hold no carriage-return noise."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, interval: float = 0.5) -> None:
        self.label, self.total, self.stream, self.interval = label, total, stream, interval
        self.enabled = stream.isatty()
        self.shown_at = 0.0

    def __call__(self, iteration: int, loss: float) -> None:
        if self.enabled and time.monotonic() - self.shown_at >= self.interval:
            self.stream.write(f"\r{self.label}: iteration {iteration + 1}/{self.total}, loss {loss:.6f}   ")
            self.stream.flush()
            self.shown_at = time.monotonic()

    def close(self) -> None:
        if self.enabled and self.shown_at:
            self.stream.write("\n")
