"""One trial, in a worker process: the train stage's training on the split's rows, measured on the validation
rows as evaluate measures them. torch, no MLflow: the driver (`study`) records what comes back.

The worker processes are forked from a fork server that imports this module, and with it torch, once.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import torch

from softmax_regression import paths
from softmax_regression.config import TrainParams
from softmax_regression.parallel.launch import die_with_parent
from softmax_regression.parallel.ranks import ONE
from softmax_regression.training.loop import Trained, train_shard
from softmax_regression.training.outputs import headline, scores


@dataclass(frozen=True)
class Outcome:
    trained: Trained
    metrics: dict[str, float]  # val_accuracy, val_log_loss, val_macro_f1


def start_worker(threads: int) -> None:
    """A worker's set-up: its share of the cores; Ctrl-C is the driver's to handle; it ends with the server."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    torch.set_num_threads(threads)


def run(params: TrainParams) -> Outcome:
    """Train as the train stage does (one process: `train_shard` on every row), then score the validation rows."""
    trained = train_shard(ONE, params, paths.TRAIN, paths.VAL, paths.CLASSES, show_progress=False)
    return Outcome(trained, headline("val", scores(trained.model, paths.VAL)))
