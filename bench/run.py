"""`make bench`: every benchmark, side by side in one run on this machine. The figures go to
bench/results.json, and docs/benchmarks.md is generated from it, stating the machine, the date and the
commit of the run once, at its top.

    python bench/run.py                      # every part; writes both files (make bench)
    python bench/run.py --only loop tune     # some parts, printed; nothing written
    python bench/run.py --report             # docs/benchmarks.md again from bench/results.json

Timings are wall-clock on a shared machine: read them as ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import limit
import loop
import memory
import ranks
import solvers
import tune
from common import ROOT, cpu_model

PARTS = {"limit": limit, "solvers": solvers, "loop": loop, "tune": tune, "memory": memory,  # in the order they run
         "ranks": ranks}
RESULTS = ROOT / "bench" / "results.json"
PAGE = ROOT / "docs" / "benchmarks.md"


def machine() -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    outputs = [f":(exclude){path.relative_to(ROOT)}" for path in (RESULTS, PAGE)]  # an earlier run's are no change
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
            "commit": commit.stdout.strip() + (" (with uncommitted changes)" if dirty else "")}


def page(results: dict) -> str:
    m = results["machine"]
    durations = ", ".join(f"{name} {results['seconds'][name] / 60:.1f} min" for name in PARTS if name in results)
    sections = [PARTS[name].markdown(results[name]) for name in PARTS if name in results]
    return "\n\n".join([
        "# Benchmarks",
        f"Measured by `make bench` on {m['date']}, commit {m['commit']}: {m['cpu']}, {m['cpus']} cores, torch "
        f"{m['torch']} on {m['torch_threads']} threads, Python {m['python']}. The run took "
        f"{results['seconds']['total'] / 60:.0f} min ({durations}). This page is generated from "
        "`bench/results.json` (`python bench/run.py --report`); every figure in it comes from that one run, side "
        "by side on one machine.",
        *sections,
    ]) + "\n"


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--only", nargs="+", choices=list(PARTS), help="these parts alone, printed, not written")
    arguments.add_argument("--report", action="store_true", help="only generate docs/benchmarks.md from results.json")
    args = arguments.parse_args()
    if args.report:
        PAGE.write_text(page(json.loads(RESULTS.read_text())))
        print(f"written {PAGE}")
        return
    results: dict = {"machine": machine(), "seconds": {}}
    start = time.perf_counter()
    for name in args.only or PARTS:
        began = time.perf_counter()
        results[name] = PARTS[name].run()
        results["seconds"][name] = time.perf_counter() - began
        print(f"\n{PARTS[name].markdown(results[name])}\n", flush=True)
    results["seconds"]["total"] = time.perf_counter() - start
    if args.only:
        return
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    PAGE.write_text(page(results))
    print(f"written {RESULTS} and {PAGE}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
