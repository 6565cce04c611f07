"""The environment every process of ours runs in, set before torch or MLflow first reads it."""

from __future__ import annotations

import os

# Nothing phones home, and a tracking server that does not answer fails a command in seconds, not after
# minutes of retries. MLflow reads these when it is imported.
OFFLINE = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def settle() -> None:
    """OFFLINE and `cpu_kernels()` as defaults of this process's environment: a user's own settings win."""
    for key, value in {**OFFLINE, **cpu_kernels()}.items():
        os.environ.setdefault(key, value)


def cpu_kernels(cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """Settings that give the same float bits on every x86-64 CPU with AVX2 and FMA.

    torch's kernels add up in vector lanes, 8 floats with AVX2 and 16 with AVX-512, so a sum's last bits
    depend on the CPU. Holding torch (ATEN_CPU_CAPABILITY) and MKL (MKL_CBWR) at the AVX2 level where the
    CPU has it makes every such CPU run the same instructions. They are read at the first tensor operation
    and the first MKL call, so setting them before either is enough. Never asked of a CPU without AVX2:
    torch would run instructions the CPU does not have. Elsewhere (no AVX2, another architecture) nothing
    is set, and the bits may differ in the last place (docs/reproducibility.md).
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux
        return {}
    return {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"} if {"avx2", "fma"} <= set(flags) else {}
