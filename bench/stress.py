"""The rank-failure tests, ROUNDS times in a row, beside CPU-hungry processes: `make stress`.

Which rank a failure is pinned on must not depend on timing. On a busy machine the ranks' exits come in
any order; this makes the machine busy (two spinning processes per core) and runs the tests that check
the named rank and its message, each ROUNDS times, in one pytest session. It prints one line per test and
a last line `stress: N of N rounds passed`, and exits non-zero if any round failed.

    python bench/stress.py [--rounds 20] [--hogs 4] [TEST ...]

Any other test can be put through the same (TEST as pytest names it, e.g.
tests/test_faults.py::test_a_killed_train_stage_leaves_whole_files_and_the_next_repro_recovers).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = [f"tests/test_distributed.py::{name}" for name in (
    "test_a_rank_that_raises_stops_every_rank_with_its_message",
    "test_a_killed_rank_is_named",
    "test_the_cause_is_reported_not_its_echo",
    "test_a_failing_rank_fails_the_stage_cleanly",  # through the real train stage on two ranks
)]


class Repeat:
    """A pytest plugin: every collected test once per round, and a tally of the outcomes."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.failed_rounds: set[int] = set()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        metafunc.fixturenames.append("stress_round")
        metafunc.parametrize("stress_round", range(self.rounds), ids=lambda r: f"round{r}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            test = report.nodeid.split("::", 1)[1].split("[", 1)[0]
            self.outcomes[test, report.outcome] += 1
            if report.outcome != "passed":
                self.failed_rounds.add(int(re.search(r"round(\d+)", report.nodeid)[1]))


def spin() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--hogs", type=int, default=2 * (os.cpu_count() or 1), help="spinning processes")
    parser.add_argument("tests", nargs="*", default=TESTS, metavar="TEST",
                        help="(default: the rank-failure tests of tests/test_distributed.py)")
    args = parser.parse_args()
    os.chdir(ROOT)
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    plugin = Repeat(args.rounds)
    start = time.monotonic()
    try:
        code = pytest.main([*args.tests, "-q", "-p", "no:cacheprovider"], plugins=[plugin])
    finally:
        for hog in hogs:
            hog.kill()
    minutes = (time.monotonic() - start) / 60
    for (test, outcome), count in sorted(plugin.outcomes.items()):
        print(f"{test}: {count} {outcome}")
    passed = args.rounds - len(plugin.failed_rounds)
    print(f"stress: {passed} of {args.rounds} rounds passed, beside {args.hogs} spinning processes on "
          f"{os.cpu_count()} cores, in {minutes:.1f} min")
    return 0 if code == 0 and passed == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
