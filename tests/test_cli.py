"""Terminal behaviour: progress on a terminal only."""

from __future__ import annotations

import io

from softmax_regression.cli import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_ends_the_line():
    stream = Terminal()
    progress = Progress("train", 100, stream=stream, interval=0)
    for t in range(3):
        progress(t, 0.5 / (t + 1))
    progress.close()
    text = stream.getvalue()
    assert "\rtrain: iteration 3/100, loss 0.166667" in text and text.endswith("\n")


def test_progress_is_silent_in_logs():
    stream = io.StringIO()
    progress = Progress("train", 100, stream=stream, interval=0)
    progress(0, 1.0)
    progress.close()
    assert stream.getvalue() == ""
