"""Memory and throughput of the stages on CSVs larger than memory needs to be: ingest and split stream, train
holds its shard of the feature matrix."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLASSES, FEATURES, clone, synthetic, tool_env

MEASURE = ("import resource, subprocess, sys; subprocess.run([sys.executable, sys.argv[1]], check=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_csv(path: Path, rows: int) -> None:
    """A synthetic CSV of `rows` × FEATURES and a label column, written in slices: the table as text would be
    a few copies of it at once."""
    import pyarrow as pa
    import pyarrow.csv as pv

    X, y = synthetic(rows, seed=2)
    for lo in range(0, rows, 500_000):
        table = pa.table({**{f"x{j}": X[lo:lo + 500_000, j].numpy() for j in range(FEATURES)},
                          "label": pa.array([f"c{v}" for v in y[lo:lo + 500_000].tolist()])})
        with open(path, "ab") as f:
            pv.write_csv(table, f, pv.WriteOptions(include_header=lo == 0))


def stages(rows: int, names: tuple[str, ...]) -> dict:
    """Peak RSS and wall time of the stages `names`, run by themselves in a clone on a CSV of `rows` rows."""
    import yaml

    out = {"rows": rows, "float64_matrix_mb": rows * FEATURES * 8 / 2**20,
           "float32_matrix_mb": rows * FEATURES * 4 / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "clone")
        write_csv(repo / "data" / "big.csv", rows)
        out["csv_mb"] = (repo / "data" / "big.csv").stat().st_size / 2**20
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["ingest"].update(path="data/big.csv", label="label", drop=[])
        params["train"].update(optimizer="lbfgs", iterations=30, eval_every=0)
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        for stage in names:
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", MEASURE, f"stages/{stage}.py"], cwd=repo,
                                    env=tool_env(PYTHONPATH="src"), capture_output=True, text=True, check=True)
            out[stage] = {"seconds": time.perf_counter() - start,
                          "peak_rss_mb": int(result.stdout.strip().splitlines()[-1]) / 1024}
            print(f"{rows:,} rows: {stage} {out[stage]['seconds']:.1f} s, peak RSS {out[stage]['peak_rss_mb']:.0f} MB",
                  flush=True)
    return out


def run(sizes: tuple[int, ...] = (1_000_000, 4_000_000)) -> dict:
    """ingest and split at every size, train at the first."""
    return {"classes": CLASSES, "features": FEATURES, "runs": [
        stages(rows, ("ingest", "split", "train") if i == 0 else ("ingest", "split")) for i, rows in enumerate(sizes)]}


OVERHEAD_TARGET_MB = 0.8e9 / 2**20  # train's peak over its float32 matrix: 0.8 GB, in the MiB this page counts in


def markdown(r: dict) -> str:
    trained = next(m for m in r["runs"] if "train" in m)
    over = trained["train"]["peak_rss_mb"] - trained["float32_matrix_mb"]
    verdict = "met" if over <= OVERHEAD_TARGET_MB else "**not met**"
    rows = []
    for m in r["runs"]:
        for stage in ("ingest", "split", "train"):
            if stage in m:
                s = m[stage]
                speed = f"{m['csv_mb'] / s['seconds']:.0f}" if stage == "ingest" else ""
                rows.append(f"| {m['rows']:,} | {m['csv_mb']:.0f} | {stage} | {s['seconds']:.1f} | {speed} | "
                            f"{s['peak_rss_mb']:.0f} | {m['float32_matrix_mb']:.0f} |")
    return "\n".join([
        "## A CSV larger than memory needs to be",
        "",
        f"The stages by themselves on synthetic CSVs of {r['features']} features and {r['classes']} classes "
        "(train: 30 iterations of `lbfgs`). ingest reads 8 MiB of text at a time and split a row group at a time: "
        "their peak does not grow with the file. train reads its shard of the feature matrix straight into the "
        "training dtype, scaled as it comes.",
        "",
        "| CSV rows | CSV (MB) | stage | wall (s) | MB/s of CSV | peak RSS (MB) | float32 matrix (MB) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"train's peak at {trained['rows']:,} rows is the float32 matrix plus {over:.0f} MB (target ≤ the matrix "
        f"+ {OVERHEAD_TARGET_MB:.0f} MB: {verdict}): the rest is Python, torch, pyarrow and MLflow, and a few blocks.",
    ])
