"""How a stage runs: CPU kernels held at one level; progress on a terminal only."""

from __future__ import annotations

import io

from softmax_regression.cli import cpu_kernels
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
