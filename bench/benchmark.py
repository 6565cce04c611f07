"""Benchmark: how fast each implementation and optimizer reaches the optimum, against scikit-learn and
against the floor of the matrix products one epoch needs; training on 1 and 2 ranks (train.world_size);
and `dvc repro` on Iris against the floor of starting Python. Prints a table and writes it as JSON.

    python bench/benchmark.py                      # n = 1e4, 1e5, 1e6 (about 9 minutes on 2 cores)
    python bench/benchmark.py --sizes 10000 --budget 5 --skip-dvc --stage-rows 0 --parallel-rows 0 \
        --json /tmp/quick.json

Timings are wall-clock on a shared machine: read them as ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from softmax_regression.config import TrainParams
from softmax_regression.parallel.launch import launch
from softmax_regression.training.gradients import IMPLEMENTATIONS
from softmax_regression.training.loop import train_shard
from softmax_regression.training.model import initial_weights, objective
from softmax_regression.training.optimizers import OPTIMIZERS, fit

ROOT = Path(__file__).resolve().parents[1]
FEATURES, CLASSES, L2, TARGET = 100, 10, 1e-3, 1e-5
LEARNING_RATES = {"gd": 1.0, "sgd": 0.1, "lbfgs": 1.0}
STAGE_IMPORTS = {  # the packages each stage needs, imported in a fresh interpreter: the floor of its time
    "ingest": "import pandas, pyarrow, pyarrow.csv, yaml",
    "split": "import pandas, pyarrow, pyarrow.parquet, yaml",
    "train": "import torch, mlflow, pandas, pyarrow.parquet, safetensors, yaml, filelock, matplotlib.pyplot",
    "evaluate": "import torch, mlflow, pandas, pyarrow.parquet, safetensors, yaml, filelock, matplotlib.pyplot",
}
SQL_STORE = "mlflow.store.tracking.sqlalchemy_store"  # what MLflow imports to open the local store


@dataclass
class Row:
    n: int
    method: str  # "impl+optimizer", "sklearn lbfgs" or "floor: X·W + Xᵀ·G"
    seconds_to_target: float | None  # None: not reached within the budget
    iterations: int | None
    final_objective: float
    seconds_per_epoch: float | None  # one full-batch loss-and-gradient evaluation and step (gd)
    peak_rss_mb: float


def synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows, 100 standardised features, 10 classes drawn around seeded centres. float32."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=g) * 0.3
    y = torch.randint(0, CLASSES, (n,), generator=g)
    X = torch.randn(n, FEATURES, generator=g)
    X += centres[y]
    return X, y


def reset_peak_memory() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sklearn_reference(X: torch.Tensor, y: torch.Tensor) -> tuple[float, Row]:
    reset_peak_memory()
    X64, y64 = X.double().numpy(), y.numpy()
    start = time.perf_counter()
    model = LogisticRegression(C=1 / (2 * L2 * len(y)), solver="lbfgs", tol=1e-8, max_iter=10_000).fit(X64, y64)
    seconds = time.perf_counter() - start
    J = objective(torch.from_numpy(X64), y, torch.from_numpy(model.coef_.T), torch.from_numpy(model.intercept_),
                  L2).item()
    return J, Row(len(y), "sklearn lbfgs", seconds, int(model.n_iter_[0]), J, None, peak_rss_mb())


def floor(X: torch.Tensor) -> Row:
    """The two matrix products an epoch cannot avoid: logits = X·W (n, k) and Xᵀ·G (d, k)."""
    W = torch.randn(X.shape[1], CLASSES)
    G = torch.randn(X.shape[0], CLASSES)
    reset_peak_memory()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        X @ W
        X.T @ G
        times.append(time.perf_counter() - start)
    return Row(X.shape[0], "floor: X·W + Xᵀ·G", None, None, float("nan"), min(times), peak_rss_mb())


def epoch_time(X: torch.Tensor, y: torch.Tensor, impl: str, repeats: int) -> float:
    """Best time of one gd iteration (loss, gradient, step) over `repeats` runs of a few iterations."""
    W0, b0 = initial_weights(X.shape[1], CLASSES, 0, X.dtype)
    params = TrainParams(impl=impl, iterations=3, lr=0.1, l2=L2, seed=0, optimizer="gd")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit(X, y, W0, b0, params)
        times.append((time.perf_counter() - start) / 3)
    return min(times)


def race(X: torch.Tensor, y: torch.Tensor, impl: str, optimizer: str, target: float, budget: float) -> Row:
    """Time until J ≤ target·(1 + TARGET), or the budget runs out."""
    W0, b0 = initial_weights(X.shape[1], CLASSES, 0, X.dtype)
    params = TrainParams(impl=impl, optimizer=optimizer, iterations=1_000_000, lr=LEARNING_RATES[optimizer],
                         l2=L2, seed=0, batch_size=1000)
    reached: list[float] = []
    reset_peak_memory()
    start = time.perf_counter()

    def stop(t: int, loss: float, weights) -> bool:
        elapsed = time.perf_counter() - start
        if loss <= target * (1 + TARGET):
            reached.append(elapsed)
            return True
        return elapsed > budget

    result = fit(X, y, W0, b0, params, callback=stop)
    epoch = epoch_time(X, y, impl, repeats=3) if optimizer == "gd" else None
    return Row(len(y), f"{impl}+{optimizer}", reached[0] if reached else None, len(result.losses),
               result.losses[-1].item(), epoch, peak_rss_mb())


def timed_repro(clone: Path, env: dict) -> tuple[float, dict[str, float]]:
    """`dvc repro` in `clone`: its wall time, and each stage's, from the line where DVC announces it to the
    next announcement (or DVC's last line), so DVC's hashing and lock writing after a stage count in it;
    what is left, DVC's start-up before the first stage and its last words, is DVC's own."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    last = start
    with subprocess.Popen(["dvc", "repro"], cwd=clone, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
            elif line.startswith(("To track the changes", "Use `dvc push`")) or not marks:
                continue
            last = time.perf_counter()
    total = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"dvc repro failed in {clone}")
    ends = [t for _, t in marks[1:]] + [last] if marks else []
    return total, {name: end - begun for (name, begun), end in zip(marks, ends, strict=True)}


def import_floor(statement: str, env: dict, repeats: int = 3) -> float:
    """The median time to start Python and run `statement` (imports), in a fresh interpreter each time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env=env, check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def dvc_repro_timing() -> dict:
    """`dvc repro` on Iris against the import floor, side by side: in a fresh clone (no MLflow store yet),
    after a change of `train.lr` (train and evaluate re-run, three times), and a no-op."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1",
           "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    floors = {stage: import_floor(statement, env) for stage, statement in STAGE_IMPORTS.items()}
    with_store = {stage: import_floor(f"{STAGE_IMPORTS[stage]}, {SQL_STORE}", env) for stage in ("train", "evaluate")}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        fresh, stages = timed_repro(clone, env)
        noop, _ = timed_repro(clone, env)  # nothing changed since
        changed = []
        params = (clone / "params.yaml").read_text()
        for lr in (0.11, 0.12, 0.13):
            (clone / "params.yaml").write_text(params.replace("  lr: ", f"  lr: {lr}  # was ", 1))
            changed.append(timed_repro(clone, env))
    changed.sort(key=lambda run: run[0])
    change, change_stages = changed[1]  # the median of three
    floor_all, floor_two = sum(floors.values()), floors["train"] + floors["evaluate"]
    table = {stage: {"wall_s": stages[stage], "import_floor_s": floors[stage],
                     "rest_s": stages[stage] - floors[stage]} for stage in STAGE_IMPORTS}
    report = {
        "per_stage_fresh_clone": table,
        "dvc_own_s": fresh - sum(stages.values()),
        "import_floor_s": floors,
        "import_floor_with_sql_store_s": with_store,
        "dvc_repro_fresh_clone_s": fresh, "dvc_repro_after_train_change_s": change,
        "per_stage_after_train_change": change_stages, "dvc_repro_noop_s": noop,
        "fresh_clone_over_floor": fresh / floor_all,
        "train_change_over_floor": change / floor_two,
    }
    print_repro_table(report)
    return report


def print_repro_table(r: dict) -> None:
    print(f"\n{'stage':<10} {'wall (s)':>9} {'import floor (s)':>17} {'rest (s)':>9}   dvc repro in a fresh clone")
    for stage, row in r["per_stage_fresh_clone"].items():
        print(f"{stage:<10} {row['wall_s']:>9.2f} {row['import_floor_s']:>17.2f} {row['rest_s']:>9.2f}")
    print(f"{'dvc own':<10} {r['dvc_own_s']:>9.2f}")
    floor_all = sum(r["import_floor_s"].values())
    floor_two = r["import_floor_s"]["train"] + r["import_floor_s"]["evaluate"]
    print(f"{'total':<10} {r['dvc_repro_fresh_clone_s']:>9.2f} {floor_all:>17.2f}")
    print(f"fresh clone: {r['dvc_repro_fresh_clone_s']:.2f} s / floor {floor_all:.2f} s = "
          f"{r['fresh_clone_over_floor']:.2f}x (target <= 1.3)")
    print(f"after a train.lr change: {r['dvc_repro_after_train_change_s']:.2f} s / floor of train + evaluate "
          f"{floor_two:.2f} s = {r['train_change_over_floor']:.2f}x (target <= 1.3); no-op dvc repro "
          f"{r['dvc_repro_noop_s']:.2f} s")
    print("import floor with MLflow's SQL store module too: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in r["import_floor_with_sql_store_s"].items()), flush=True)


def warm_up() -> None:
    """One small fit of every kind first: the first backward() starts autograd's threads (about 1 s)."""
    X, y = synthetic(1000, seed=1)
    for impl in IMPLEMENTATIONS:
        for optimizer in OPTIMIZERS:
            W0, b0 = initial_weights(FEATURES, CLASSES, 0, X.dtype)
            fit(X, y, W0, b0, TrainParams(impl=impl, optimizer=optimizer, iterations=3, lr=0.1, l2=L2, seed=0))


# The commit whose ingest read the whole CSV at once (pyarrow's multi-threaded reader, then pandas): the
# throughput the streaming ingest is compared with, side by side.
IN_MEMORY_INGEST = "cd6023e"


def stage_memory(rows: int, stages: tuple[str, ...] = ("ingest", "split", "train"),
                 compare_ingest: bool = False) -> dict:
    """Peak RSS and wall time of `stages` on a synthetic CSV of `rows` × 100 features, in a clone of the
    repository, against the size of the feature matrix in float64 (one "copy"); ingest's throughput in MB
    of CSV per second, and with `compare_ingest` that of the in-memory ingest (IN_MEMORY_INGEST) on the
    same file, run right after it."""
    import pyarrow as pa
    import pyarrow.csv as pv
    import yaml

    X, y = synthetic(rows, seed=2)
    matrix_mb = rows * FEATURES * 8 / 2**20
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONPATH": "src"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = {"rows": rows, "feature_matrix_float64_mb": matrix_mb}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        start = time.perf_counter()
        for lo in range(0, rows, 500_000):  # in slices: the table as text would be a few copies at once
            table = pa.table({**{f"x{j}": X[lo:lo + 500_000, j].numpy() for j in range(FEATURES)},
                              "label": pa.array([f"c{v}" for v in y[lo:lo + 500_000].tolist()])})
            with open(clone / "data" / "big.csv", "ab") as f:
                pv.write_csv(table, f, pv.WriteOptions(include_header=lo == 0))
        out["csv_mb"] = (clone / "data" / "big.csv").stat().st_size / 2**20
        out["csv_write_s"] = time.perf_counter() - start
        del X, y, table
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["ingest"].update(path="data/big.csv", label="label", drop=[])
        params["train"].update(optimizer="lbfgs", iterations=30, eval_every=0)
        (clone / "params.yaml").write_text(yaml.safe_dump(params))
        runs = [(stage, clone) for stage in stages]
        if compare_ingest:
            old = Path(tmp) / "in-memory"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(old)], check=True)
            subprocess.run(["git", "checkout", "-q", IN_MEMORY_INGEST], cwd=old, check=True)
            (old / "params.yaml").write_text(yaml.safe_dump(params))
            (old / "data" / "big.csv").symlink_to(clone / "data" / "big.csv")
            runs.insert(1, ("ingest (in memory)", old))
        for stage, where in runs:
            measure = ("import resource, subprocess, sys; subprocess.run([sys.executable, sys.argv[1]], check=True); "
                       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", measure, f"stages/{stage.split()[0]}.py"], cwd=where,
                                    env=env, capture_output=True, text=True, check=True)
            peak_mb = int(result.stdout.strip().splitlines()[-1]) / 1024
            seconds = time.perf_counter() - start
            out[stage] = {"seconds": seconds, "peak_rss_mb": peak_mb, "copies_of_matrix": peak_mb / matrix_mb}
            if stage.startswith("ingest"):
                out[stage]["csv_mb_per_s"] = out["csv_mb"] / seconds
            print(f"{rows:,} rows, stage {stage}: {seconds:.1f} s, peak RSS {peak_mb:.0f} MB = "
                  f"{peak_mb / matrix_mb:.2f} × the float64 feature matrix"
                  + (f", {out['csv_mb'] / seconds:.0f} MB/s of CSV" if stage.startswith("ingest") else ""),
                  flush=True)
    return out


def streaming(sizes: list[int]) -> list[dict]:
    """ingest and split at each size (and train, and the in-memory ingest, at the first), then the table."""
    results = [stage_memory(rows, ("ingest", "split", "train") if i == 0 else ("ingest", "split"),
                            compare_ingest=i == 0) for i, rows in enumerate(sizes)]
    streaming_table(results)
    return results


def streaming_table(results: list[dict]) -> None:
    print("\n| CSV rows × 100 | CSV (MB) | stage | wall (s) | MB/s of CSV | peak RSS (MB) |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for r in results:
        for stage in ("ingest", "ingest (in memory)", "split", "train"):
            if stage in r:
                m = r[stage]
                speed = f"{m['csv_mb_per_s']:.0f}" if "csv_mb_per_s" in m else ""
                print(f"| {r['rows']:,} | {r['csv_mb']:.0f} | {stage} | {m['seconds']:.1f} | {speed} | "
                      f"{m['peak_rss_mb']:.0f} |")


def data_parallel(rows: int, iterations: int) -> dict:
    """The train stage's work (`train_shard`) on 1 and 2 ranks, `rows` training rows × 100 features,
    `iterations` of gd and of lbfgs, timed on rank 0: per iteration, the whole training (feature scaling
    included), and the wall time of the launch (processes started, shards read, training, result back)."""
    import pandas as pd

    from softmax_regression.data.tables import write_parquet
    from softmax_regression.files import write_json

    X, y = synthetic(rows + rows // 4, seed=3)
    out: dict = {"train_rows": rows, "iterations": iterations, "cpu": cpu_model(), "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = pd.DataFrame(X.double().numpy(), columns=[f"x{j}" for j in range(FEATURES)]).assign(label=y.numpy())
        del X, y
        write_parquet(table.iloc[:rows], folder / "train.parquet")
        write_parquet(table.iloc[rows:], folder / "val.parquet")
        write_json(folder / "classes.json", {"label": "label", "classes": {f"c{c}": c for c in range(CLASSES)}})
        del table
        files = (folder / "train.parquet", folder / "val.parquet", folder / "classes.json")
        for optimizer in ("gd", "lbfgs"):
            for impl in sorted(IMPLEMENTATIONS):
                for world_size in (1, 2):
                    params = TrainParams(impl=impl, optimizer=optimizer, iterations=iterations,
                                         lr=LEARNING_RATES[optimizer], l2=L2, seed=0, eval_every=0,
                                         world_size=world_size)
                    start = time.perf_counter()
                    trained = launch(world_size, torch.device("cpu"), train_shard, params, *files)
                    run = {"impl": impl, "optimizer": optimizer, "world_size": world_size,
                           "s_per_iteration": trained.fit.seconds / iterations, "train_s": trained.seconds,
                           "wall_s": time.perf_counter() - start, "final_loss": trained.fit.losses[-1].item()}
                    out["runs"].append(run)
                    print(f"{rows:>9}  {impl}+{optimizer} on {world_size} rank{'s' if world_size > 1 else ''}: "
                          f"{1000 * run['s_per_iteration']:.0f} ms per iteration, training {run['train_s']:.1f} s "
                          f"(scaling included), launch {run['wall_s']:.1f} s, final J {run['final_loss']:.8f}",
                          flush=True)
    by = {(r["impl"], r["optimizer"], r["world_size"]): r for r in out["runs"]}
    out["speedup_2_over_1"] = {f"{impl}+{opt}": {
        "per_iteration": by[impl, opt, 1]["s_per_iteration"] / by[impl, opt, 2]["s_per_iteration"],
        "training": by[impl, opt, 1]["train_s"] / by[impl, opt, 2]["train_s"],
        "wall": by[impl, opt, 1]["wall_s"] / by[impl, opt, 2]["wall_s"],
        "final_loss_difference": abs(by[impl, opt, 1]["final_loss"] - by[impl, opt, 2]["final_loss"])}
        for impl, opt, _ in by}
    return out


def cpu_model() -> str:
    """The CPU's name (Linux's /proc/cpuinfo): MKL's speed, and some of its kernels', differ by vendor."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def rewrite_part(path: Path, key: str, value: dict) -> None:
    """One part of the report anew, the rest as the last full run left it."""
    report = json.loads(path.read_text()) if path.exists() else {}
    report[key] = value
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per run before giving up")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--skip-dvc", action="store_true", help="skip the dvc repro timing on Iris")
    parser.add_argument("--dvc-only", action="store_true", help="only the dvc repro timing on Iris")
    parser.add_argument("--stage-rows", type=int, nargs="+", default=[1_000_000, 4_000_000],
                        help="rows of the CSVs for the stages' peak memory (0: skip); train on the first only")
    parser.add_argument("--streaming-only", action="store_true",
                        help="only the stages' memory and ingest throughput (--stage-rows)")
    parser.add_argument("--parallel-rows", type=int, default=1_000_000,
                        help="training rows for 1 rank against 2 (0: skip)")
    parser.add_argument("--parallel-iterations", type=int, default=20)
    parser.add_argument("--parallel-only", action="store_true", help="only 1 rank against 2 (--parallel-rows)")
    args = parser.parse_args()
    if args.parallel_only:
        data_parallel_report = data_parallel(args.parallel_rows, args.parallel_iterations)
        print(json.dumps({"data_parallel_speedup_2_over_1": data_parallel_report["speedup_2_over_1"]}, indent=2))
        return rewrite_part(args.json, "data_parallel", data_parallel_report)
    if args.streaming_only:
        return rewrite_part(args.json, "stage_memory", streaming(args.stage_rows))
    if args.dvc_only:
        return rewrite_part(args.json, "iris_dvc_repro", dvc_repro_timing())
    torch.manual_seed(0)

    warm_up()
    rows: list[Row] = []
    for n in args.sizes:
        X, y = synthetic(n)
        target, reference = sklearn_reference(X, y)
        rows += [reference, floor(X)]
        print_row(rows[-2]), print_row(rows[-1])
        for optimizer in ("lbfgs", "gd", "sgd"):
            for impl in sorted(IMPLEMENTATIONS):
                rows.append(race(X, y, impl, optimizer, target, args.budget))
                print_row(rows[-1])
        del X, y

    summary = ratios(rows)
    report = {"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "settings": {"features": FEATURES, "classes": CLASSES, "l2": L2, "target_relative": TARGET,
                           "budget_s": args.budget, "learning_rates": LEARNING_RATES, "sgd_batch_size": 1000},
              "rows": [asdict(r) for r in rows], "ratios": summary}
    if not args.skip_dvc:
        report["iris_dvc_repro"] = dvc_repro_timing()
    if args.parallel_rows:
        report["data_parallel"] = data_parallel(args.parallel_rows, args.parallel_iterations)
    if args.stage_rows and args.stage_rows[0]:
        report["stage_memory"] = streaming(args.stage_rows)
    print()
    summary_keys = ("ratios", "iris_dvc_repro", "stage_memory")
    print(json.dumps({key: report[key] for key in summary_keys if key in report}, indent=2))
    if "data_parallel" in report:
        print(json.dumps({"data_parallel_speedup_2_over_1": report["data_parallel"]["speedup_2_over_1"]}, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


def ratios(rows: list[Row]) -> dict:
    """The targets, as ratios measured in this run."""
    out = {}
    for n in sorted({r.n for r in rows}):
        by = {r.method: r for r in rows if r.n == n}
        floor_s = by["floor: X·W + Xᵀ·G"].seconds_per_epoch
        sk = by["sklearn lbfgs"].seconds_to_target
        lbfgs = {impl: by[f"{impl}+lbfgs"].seconds_to_target for impl in IMPLEMENTATIONS}
        epochs = {impl: by[f"{impl}+gd"].seconds_per_epoch for impl in IMPLEMENTATIONS}
        out[str(n)] = {
            "lbfgs_time_over_sklearn": {k: (v / sk if v else None) for k, v in lbfgs.items()},
            "gd_epoch_over_matmul_floor": {k: v / floor_s for k, v in epochs.items()},
            "epoch_over_manual": {k: v / epochs["manual"] for k, v in epochs.items()},
        }
    return out


def print_row(r: Row) -> None:
    if not hasattr(print_row, "header"):
        print(f"{'n':>9}  {'method':<20} {'to target (s)':>13} {'iters':>7} {'final J':>12} {'epoch (ms)':>10} "
              f"{'peak RSS (MB)':>13}")
        print_row.header = True
    reached = f"{r.seconds_to_target:.2f}" if r.seconds_to_target is not None else "not reached"
    epoch = f"{1000 * r.seconds_per_epoch:.1f}" if r.seconds_per_epoch is not None else "-"
    print(f"{r.n:>9}  {r.method:<20} {reached:>13} {r.iterations if r.iterations is not None else '-':>7} "
          f"{r.final_objective:>12.8f} {epoch:>10} {r.peak_rss_mb:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
