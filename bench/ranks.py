"""One rank or two (`train.world_size`): the train stage's own work, `train_shard`, on 1 and 2 ranks forked from
the fork server, gd and lbfgs, each implementation."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import CLASSES, FEATURES, L2, synthetic

LEARNING_RATES = {"gd": 1.0, "lbfgs": 1.0}


def write_split(folder: Path, rows: int) -> tuple[Path, Path, Path]:
    """What the split stage writes: `rows` training rows, a quarter as many validation rows, the classes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from softmax_regression.data.tables import ROW_GROUP
    from softmax_regression.files import write_json

    X, y = synthetic(rows + rows // 4, seed=3)
    columns = {f"x{j}": X[:, j].double().numpy() for j in range(FEATURES)}
    table = pa.table({**columns, "label": y.numpy()})
    pq.write_table(table.slice(0, rows), folder / "train.parquet", row_group_size=ROW_GROUP)
    pq.write_table(table.slice(rows), folder / "val.parquet", row_group_size=ROW_GROUP)
    write_json(folder / "classes.json", {"label": "label", "classes": {f"c{c}": c for c in range(CLASSES)}})
    return folder / "train.parquet", folder / "val.parquet", folder / "classes.json"


def run(rows: int = 1_000_000, iterations: int = 20) -> dict:
    """Per iteration, the whole training (feature scaling included) and the launch's wall time (processes
    started, shards read, training, the result back), timed on rank 0."""
    import torch

    from softmax_regression.config import TrainParams
    from softmax_regression.parallel.launch import launch
    from softmax_regression.training.gradients import IMPLEMENTATIONS
    from softmax_regression.training.loop import train_shard

    out: dict = {"train_rows": rows, "iterations": iterations, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_split(Path(tmp), rows)
        for optimizer, lr in LEARNING_RATES.items():
            for impl in sorted(IMPLEMENTATIONS):
                for world_size in (1, 2):
                    params = TrainParams(impl=impl, optimizer=optimizer, iterations=iterations, lr=lr, l2=L2,
                                         seed=0, eval_every=0, world_size=world_size)
                    start = time.perf_counter()
                    trained = launch(world_size, torch.device("cpu"), train_shard, params, *files)
                    out["runs"].append({"impl": impl, "optimizer": optimizer, "world_size": world_size,
                                        "s_per_iteration": trained.fit.seconds / len(trained.fit.losses),
                                        "train_s": trained.seconds, "wall_s": time.perf_counter() - start,
                                        "final_loss": trained.fit.losses[-1].item()})
                    print(f"ranks: {impl}+{optimizer} on {world_size}: {out['runs'][-1]}", flush=True)
    return out


def markdown(r: dict) -> str:
    by = {(m["impl"], m["optimizer"], m["world_size"]): m for m in r["runs"]}
    rows = []
    for impl, optimizer in sorted({(impl, optimizer) for impl, optimizer, _ in by}):
        one, two = by[impl, optimizer, 1], by[impl, optimizer, 2]
        rows.append(f"| {impl}+{optimizer} | {1000 * one['s_per_iteration']:.0f} | {1000 * two['s_per_iteration']:.0f} "
                    f"| {one['s_per_iteration'] / two['s_per_iteration']:.2f}× | {one['train_s']:.1f} | "
                    f"{two['train_s']:.1f} | {one['wall_s']:.1f} | {two['wall_s']:.1f} | {one['final_loss']:.8f} | "
                    f"{two['final_loss']:.8f} |")
    return "\n".join([
        "## One rank or two (`train.world_size`)",
        "",
        f"The train stage's work (`train_shard`: read the shard, scale, train, measure) on {r['train_rows']:,} "
        f"training rows, {r['iterations']} iterations; each rank gets its share of the threads.",
        "",
        "| method | ms per iteration, 1 rank | 2 ranks | speed-up | training, 1 rank (s) | 2 ranks (s) | "
        "launch, 1 rank (s) | 2 ranks (s) | final J, 1 rank | 2 ranks |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ])
