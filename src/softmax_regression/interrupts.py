"""Ctrl-C and SIGTERM in a stage: a KeyboardInterrupt, but never in the middle of a call to the tracking store.

Python raises a signal's exception wherever the main thread happens to be. Raised between a database query and
the fetch of its rows, it would leave the sqlite connection holding its lock, and marking the run KILLED would
then wait out MLflow's busy timeout (20 s). So every call to MLflow runs in a `deferred()` block: a signal that
arrives there is raised when the block ends. A second signal is raised at once: a way out of a call that hangs,
such as one to a tracking server that stopped answering.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # how many deferred() blocks the main thread is in
_pending = False  # a signal arrived in one, and has not been raised yet


def install() -> None:
    """Raise KeyboardInterrupt on SIGINT and SIGTERM alike, deferred in a `deferred()` block."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


@contextmanager
def deferred() -> Iterator[None]:
    """A block, or with `@deferred()` a function, that a first Ctrl-C or SIGTERM does not interrupt: it is
    raised as the outermost such block ends (or earlier, by `raise_pending`)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            raise_pending()


def raise_pending() -> None:
    """Raise now the interrupt deferred so far, if any: for a block inside a deferred one that must see it
    before the outermost block ends (`tracking.failing_marks_run`, which then marks the run KILLED)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def _handle(signum: int, frame: object) -> None:
    global _pending
    if _depth and not _pending:
        _pending = True
        return
    raise KeyboardInterrupt


def interrupted(error: BaseException) -> bool:
    """Whether `error` is, or was raised because of, Ctrl-C or SIGTERM (a KeyboardInterrupt). Python raises
    the interrupt wherever the process happens to be, and some places wrap it: in the middle of creating a
    class (an import, say) it comes out as a RuntimeError whose cause is the KeyboardInterrupt."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
