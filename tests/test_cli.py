"""How a stage runs: CPU kernels held at one level; progress on a terminal only."""

from __future__ import annotations

import io
import subprocess
import sys

from softmax_regression.cli import cpu_kernels
from softmax_regression.compare import shared_cores
from softmax_regression.training import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_iteration_and_loss_on_a_terminal():
    stream = Terminal()
    with progress_bar(100, stream=stream) as bar:
        for t in range(3):
            bar.show(t, 0.5 / (t + 1))
        bar.refresh()
    text = stream.getvalue()
    assert "train" in text and "3/100" in text and "loss 0.166667" in text, text


def test_progress_is_silent_in_logs_and_on_other_ranks():
    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        with progress_bar(100, enabled=enabled, stream=stream) as bar:
            bar.show(0, 1.0)
        assert stream.getvalue() == ""


def test_cpu_kernels_are_held_at_avx2_only_where_the_cpu_has_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2 avx512f\n\nprocessor\t: 1\n")
    assert cpu_kernels(cpuinfo) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n")
    assert cpu_kernels(cpuinfo) == {}, "asking torch for AVX2 on a CPU without it kills the process"
    assert cpu_kernels(tmp_path / "absent") == {}


STAGE = """
import atexit, sys
from softmax_regression.cli import run_stage
from softmax_regression.errors import DataError
atexit.register(lambda: print("exit handler ran"))
def main():
    print("written, not yet flushed", end="; ")
    if sys.argv[1] == "fail":
        raise DataError("column 'x' is missing")
run_stage(main)
"""


def test_a_stage_exits_at_once_but_runs_its_exit_handlers_and_flushes_its_output():
    ok = subprocess.run([sys.executable, "-c", STAGE, "ok"], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "written, not yet flushed; exit handler ran\n", "")
    bad = subprocess.run([sys.executable, "-c", STAGE, "fail"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout == "written, not yet flushed; exit handler ran\n"
    assert bad.stderr == "error: column 'x' is missing\n"


def test_experiments_run_at_once_share_the_cores_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert shared_cores(2)["OMP_NUM_THREADS"] == "4" and shared_cores(2)["MKL_NUM_THREADS"] == "4"
    assert shared_cores(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert shared_cores(2)["OMP_NUM_THREADS"] == "3"
