"""What the commands share: their argument parsers, the tables they print, and how a server runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

from softmax_regression.errors import PipelineError


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of `python -m softmax_regression.commands.<module>`, its docstring as the help."""
    return argparse.ArgumentParser(prog=f"python -m softmax_regression.commands.{module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def server_arguments(module: str, doc: str | None, port: int, argv: list[str] | None = None) -> argparse.Namespace:
    """--host and --port of a command that serves on this machine (`make ui`, `make serve`)."""
    args = parser(module, doc)
    args.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    args.add_argument("--port", type=int, default=port, help="(default: %(default)s)")
    return args.parse_args(argv)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under a header and a rule, each column as wide as its widest cell."""
    cells = [[str(c) for c in row] for row in [columns, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_server(name: str, command: list[str]) -> None:
    """Run a server (`mlflow ui`, `mlflow models serve`) until Ctrl-C or SIGTERM, then stop it and say so in
    one line. Its log reaches the terminal until then; what it prints while it shuts down does not.

    The server runs in a session of its own, so that Ctrl-C reaches this process alone and not a server that
    would answer it with a traceback; and this process holds the terminal's foreground while it runs, so that
    Ctrl-C does not reach `make` either, which would add an error line of its own."""
    terminal = _hold_terminal()
    relaying = threading.Event()
    relaying.set()
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    relay = threading.Thread(target=_relay, args=(server.stdout, relaying), daemon=True)
    relay.start()
    try:
        code = server.wait()
    except KeyboardInterrupt:
        relaying.clear()
        _stop(server)
        print(f"{name}: stopped", file=sys.stderr)
        return
    finally:
        _release_terminal(terminal)
    relay.join(timeout=5)
    if code != 0:
        raise PipelineError(f"{name}: the server exited with status {code} (its log is above)")


def _relay(stream: IO[bytes], relaying: threading.Event) -> None:
    for line in iter(stream.readline, b""):
        if relaying.is_set():
            sys.stderr.buffer.write(line)
            sys.stderr.flush()


def _stop(server: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the server's whole session, SIGKILL after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _hold_terminal() -> tuple[int, int] | None:
    """Make this process's group the terminal's foreground group, as a shell does for a job; returns (the
    terminal, the group it had), or None where there is no terminal or this process is not in the foreground."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        return None
    try:
        previous = os.tcgetpgrp(tty)
        if previous != os.getpgrp():
            os.close(tty)
            return None
        os.setpgid(0, 0)
        _set_foreground(tty, os.getpgrp())
    except OSError:
        os.close(tty)
        return None
    return tty, previous


def _release_terminal(held: tuple[int, int] | None) -> None:
    if held is not None:
        tty, previous = held
        with contextlib.suppress(OSError):
            _set_foreground(tty, previous)
        os.close(tty)


def _set_foreground(tty: int, group: int) -> None:
    handler = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not change it otherwise
    try:
        os.tcsetpgrp(tty, group)
    finally:
        signal.signal(signal.SIGTTOU, handler)
