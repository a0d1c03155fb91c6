"""Run the benchmarks: `python -m bench [name ...]` (default: all). Exit 1 if a goal was missed."""

from __future__ import annotations

import importlib
import sys

BENCHES = ("webhook", "etl", "sql", "fresh", "media", "imports", "forget")


def main(names: list[str]) -> int:
    results = {}
    for name in names or BENCHES:
        print(f"== {name}", flush=True)
        results[name] = importlib.import_module(f"bench.{name}").run()
    missed = [n for n, ok in results.items() if not ok]
    print("all goals met" if not missed else f"goals missed in: {', '.join(missed)}")
    return 1 if missed else 0


sys.exit(main(sys.argv[1:]))
