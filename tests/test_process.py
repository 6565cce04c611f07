"""How a stage or a command runs: one line for an expected error, Ctrl-C and SIGTERM deferred around MLflow's
calls, the exit at once, CPU kernels held at one level."""

from __future__ import annotations

import subprocess
import sys

from softmax_regression.interrupts import interrupted
from softmax_regression.runtime import cpu_kernels


def test_cpu_kernels_are_held_at_avx2_only_where_the_cpu_has_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2 avx512f\n\nprocessor\t: 1\n")
    assert cpu_kernels(cpuinfo) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n")
    assert cpu_kernels(cpuinfo) == {}, "asking torch for AVX2 on a CPU without it kills the process"
    assert cpu_kernels(tmp_path / "absent") == {}


STAGE = """
import atexit, os, signal, sys, time
from softmax_regression.process import run_main
from softmax_regression.errors import DataError
atexit.register(lambda: print("exit handler ran"))
class TermOnNaming:  # SIGTERM while a class is made, as while a module such as MLflow's is imported
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler runs here
def main():
    print("written, not yet flushed", end="; ")
    if sys.argv[1] == "fail":
        raise DataError("column 'x' is missing")
    if sys.argv[1] == "terminate":
        type("Owner", (), {"attribute": TermOnNaming()})
    if sys.argv[1] == "bug":
        raise RuntimeError("not an expected error")
run_main(main)
"""


def test_a_stage_exits_at_once_but_runs_its_exit_handlers_and_flushes_its_output():
    ok = subprocess.run([sys.executable, "-c", STAGE, "ok"], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "written, not yet flushed; exit handler ran\n", "")
    bad = subprocess.run([sys.executable, "-c", STAGE, "fail"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout == "written, not yet flushed; exit handler ran\n"
    assert bad.stderr == "error: column 'x' is missing\n"


def test_sigterm_anywhere_is_one_line_even_when_python_wraps_it():
    """Python 3.11 turns an exception raised while a class is made into a RuntimeError caused by it: a SIGTERM
    that lands in an import (a busy machine, a slow start) is one line all the same."""
    stopped = subprocess.run([sys.executable, "-c", STAGE, "terminate"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr == "error: interrupted; outputs written so far are complete, the rest untouched\n"
    assert stopped.stdout == "written, not yet flushed; exit handler ran\n"
    bug = subprocess.run([sys.executable, "-c", STAGE, "bug"], capture_output=True, text=True, timeout=60)
    assert bug.returncode == 1 and "Traceback" in bug.stderr, "an unexpected error keeps its traceback"


DEFERRED = """
import signal
from softmax_regression import interrupts

interrupts.install()

def steps(*names):
    try:
        for name in names:
            if name in ("SIGINT", "SIGTERM"):
                signal.raise_signal(getattr(signal, name))  # its handler has run when this returns
            elif name == "raise_pending":
                interrupts.raise_pending()
            print(name, end=" ")
    except KeyboardInterrupt:
        print("interrupted", end=" ")
        raise

for case in (["SIGTERM", "call done"], ["SIGINT", "call done"], ["SIGTERM", "SIGTERM", "not reached"],
             ["SIGTERM", "raise_pending", "not reached"], ["nested", "SIGTERM", "inner call done"]):
    try:
        with interrupts.deferred():
            if case[0] == "nested":
                with interrupts.deferred():
                    steps(*case)
                print("outer call done", end=" ")
            else:
                steps(*case)
    except KeyboardInterrupt:
        print("| raised", end=" ")
    print()
signal.raise_signal(signal.SIGTERM)
"""


def test_an_interrupt_in_a_deferred_block_is_raised_when_it_ends_and_a_second_one_at_once():
    result = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60)
    assert [line.strip() for line in result.stdout.splitlines()] == [
        "SIGTERM call done | raised",
        "SIGINT call done | raised",
        "SIGTERM interrupted | raised",
        "SIGTERM interrupted | raised",
        "nested SIGTERM inner call done outer call done | raised",
    ], result.stderr
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr, "outside a block: at once"


def test_an_interrupt_is_found_through_the_exceptions_it_caused():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__") from e
    except RuntimeError as e:
        wrapped = e
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("cleanup failed")  # not `from`: the implicit context is the point
    except OSError as e:
        during = e
    assert interrupted(KeyboardInterrupt()) and interrupted(wrapped) and interrupted(during)
    assert not interrupted(RuntimeError("a bug")) and not interrupted(ValueError("x"))
