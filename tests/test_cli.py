"""How a stage runs: progress on a terminal only, CPU kernels held at one level."""

from __future__ import annotations

import io

from softmax_regression.cli import Progress, cpu_kernels


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


def test_cpu_kernels_are_held_at_avx2_only_where_the_cpu_has_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2 avx512f\n\nprocessor\t: 1\n")
    assert cpu_kernels(cpuinfo) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n")
    assert cpu_kernels(cpuinfo) == {}, "asking torch for AVX2 on a CPU without it kills the process"
    assert cpu_kernels(tmp_path / "absent") == {}
