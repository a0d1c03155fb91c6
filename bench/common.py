"""Timing helpers shared by the benchmarks: alternate ours and the baseline, keep medians."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def alternate(ours: Callable[[int], float], baseline: Callable[[int], float], rounds: int) -> tuple[float, float]:
    """Run both `rounds` times, interleaved so drift hits both; return the median seconds of each."""
    a, b = [], []
    for i in range(rounds):
        b.append(baseline(i))
        a.append(ours(i))
    return statistics.median(a), statistics.median(b)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def import_seconds(statement: str) -> float:
    """Seconds a fresh interpreter spends on `statement` (interpreter start-up excluded)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def report(name: str, ours: float, baseline: float, goal: float, unit: str = "s", what: str = "") -> bool:
    """Print one result line (with the word "ratio") and return whether the goal was met."""
    ratio = ours / baseline
    ok = ratio <= goal
    scale, label = {"s": (1, "s"), "ms": (1e3, "ms"), "us": (1e6, "µs"), "MiB": (1, "MiB")}[unit]
    print(f"{name}: ours {ours * scale:.2f} {label} vs {what or 'baseline'} {baseline * scale:.2f} {label}"
          f"  ratio {ratio:.2f}x (goal <= {goal}x) {'OK' if ok else 'MISSED'}", flush=True)
    return ok
