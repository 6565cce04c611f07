"""What the benchmarks share: the synthetic data, the machine, and memory and process helpers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES, CLASSES, L2 = 100, 10, 1e-3


def synthetic(n: int, seed: int = 0):
    """n rows × FEATURES standardised features in CLASSES overlapping classes around seeded centres: X (n, d)
    float32 and y (n,) int64, as torch tensors."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=g) * 0.3
    y = torch.randint(0, CLASSES, (n,), generator=g)
    X = torch.randn(n, FEATURES, generator=g)
    X += centres[y]
    return X, y


def sklearn_at_defaults(X, y):
    """scikit-learn's LogisticRegression at its defaults (lbfgs, tol 1e-4, max_iter 100) on our objective,
    C = 1/(2·l2·n), fitted on the numpy arrays X (n, d) and y (n,) as a user would pass them."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1 / (2 * L2 * len(y))).fit(X, y)


def objective_in_float64(X64, y, coef, intercept) -> float:
    """J at scikit-learn-oriented coefficients, coef (k, d) and intercept (k,), on X64 (n, d) float64: the one
    yardstick for their fits and ours."""
    import torch

    from softmax_regression.training.model import objective

    return objective(X64, y, torch.as_tensor(coef, dtype=torch.float64),
                     torch.as_tensor(intercept, dtype=torch.float64), L2).item()


def fastest(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Each function's fastest of `repeats` runs, in interleaved rounds (each function once a round), so that
    a busy spell on a shared machine slows all of them alike, and the minimum is each one's own cost."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


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


def cpu_model() -> str:
    """The CPU's name (Linux's /proc/cpuinfo): MKL's speed, and some of its kernels', differ by vendor."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def tool_env(**extra: str) -> dict[str, str]:
    """The environment the real tools run in: this venv first, no telemetry, the repository's own store."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1",
           "PYTHONUNBUFFERED": "1", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def clone(dest: Path) -> Path:
    """A fresh clone of the repository's last commit."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    return dest
