"""How a stage script runs: an expected failure is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from softmax_regression.errors import PipelineError


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
