"""DVC's queue, run side by side (`pipeline.queue`): each experiment's share of the cores, and a worker's reply
read before it is written."""

from __future__ import annotations

from softmax_regression.pipeline.queue import busy_workers, shared_cores


def test_experiments_run_at_once_share_the_cores_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert shared_cores(2)["OMP_NUM_THREADS"] == "4" and shared_cores(2)["MKL_NUM_THREADS"] == "4"
    assert shared_cores(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert shared_cores(2)["OMP_NUM_THREADS"] == "3"


class _Queue:
    def __init__(self, reply: bytes):
        self.reply = reply

    def worker_status(self):
        from kombu.utils.json import loads

        return loads(self.reply)  # what kombu's filesystem transport does with a reply file


def test_a_worker_reply_read_before_it_is_written_counts_as_no_answer():
    """kombu reads the workers' reply files without the writer's lock (celery/kombu#1551): an empty or
    half-written one, which a loaded machine can give, is no answer rather than an error."""
    assert busy_workers(_Queue(b'{"w1": [{"id": "t"}], "w2": []}')) == 1
    assert busy_workers(_Queue(b"")) == 0
    assert busy_workers(_Queue(b'{"w1": [{"id"')) == 0
