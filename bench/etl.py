"""The daily ETL on a folder lake of synthetic deliveries, as whole processes (wall time, peak memory).

- against DuckDB's own JSON reader → Parquet over the same raw files, at 10k deliveries (DuckDB's glob
  reading grows superlinearly; `read_json` with schema detection took minutes at 10k here, so the baseline
  is its fastest form, `read_json_objects`: raw objects to zstd Parquet, no columns extracted);
- against the floor: reading every raw file and JSON-parsing it (orjson), nothing else, at 100k; the ETL as it
  runs (its read-and-parse on the usable cores) and pinned to one core, and the stretch (below the floor);
- its own growth from 10k to 100k deliveries, and its peak memory at 100k.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import PROJECT_DIR, report

DAY = date(2026, 11, 24)
FLOOR = """
import os, sys, orjson
n = 0
for source in ("telegram", "whatsapp"):
    folder = os.path.join(sys.argv[1], f"raw/source={source}/dt={sys.argv[2]}")
    for entry in os.scandir(folder):
        if entry.name == "_arrivals":  # the folder's arrivals journal (FolderStorage), not a delivery
            continue
        with open(entry.path, "rb") as f:
            orjson.loads(f.read())
        n += 1
print(n)
"""
DUCKDB = """
import sys, duckdb
root, day, out = sys.argv[1:]
duckdb.sql(f"COPY (SELECT * FROM read_json_objects('{root}/raw/source=*/dt={day}/*.json')) "
           f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
"""


def one_core() -> None:
    """Pin the process to one core (as `taskset -c` does): the ETL then parses in one process."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def measured(cmd: list[str], env: dict[str, str], *, pinned: bool = False) -> tuple[float, int]:
    """Wall seconds and peak resident bytes of one process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=one_core if pinned else None)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{cmd} failed: {err.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def make_lake(root: Path, n: int) -> None:
    from chalicelib.storage import FolderStorage
    from chatlake.local import synthetic

    stored = synthetic.store(FolderStorage(root), synthetic.deliveries(n, seed=42, day=DAY))
    print(f"  {n:,} deliveries generated ({stored:,} distinct raw files) in {root}", flush=True)


def run(rounds: int = 3) -> bool:
    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-etl-"))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    py = sys.executable
    try:
        small, big = work / "10k", work / "100k"
        make_lake(small, 10_000)
        make_lake(big, 100_000)

        def ours(root: Path, pinned: bool = False) -> tuple[float, int]:
            return measured([py, "-m", "chatlake", "etl", "--date", str(DAY)], {**env, "DATALAKE_URL": str(root)},
                            pinned=pinned)

        pin = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1
        names = ("ours10k", "duck10k", "ours100k", "floor100k", *(("one100k", "floor_one100k") if pin else ()))
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in names}
        for _ in range(rounds):  # interleaved, so drift on the machine hits all of them alike
            results["duck10k"].append(measured([py, "-c", DUCKDB, str(small), str(DAY), str(work / "d.parquet")], env))
            results["ours10k"].append(ours(small))
            results["floor100k"].append(measured([py, "-c", FLOOR, str(big), str(DAY)], env))
            results["ours100k"].append(ours(big))
            if pin:  # both on one core, so that a busy core slows both alike
                results["floor_one100k"].append(measured([py, "-c", FLOOR, str(big), str(DAY)], env, pinned=True))
                results["one100k"].append(ours(big, pinned=True))
        t = {k: statistics.median(s for s, _ in v) for k, v in results.items()}
        peak = max(m for _, m in results["ours100k"])
        ok = report("ETL at 10k deliveries vs DuckDB read_json_objects -> Parquet", t["ours10k"], t["duck10k"], 1.0,
                    what="DuckDB")
        ok &= report("ETL at 100k deliveries vs the floor (read + orjson-parse every file)", t["ours100k"],
                     t["floor100k"], 2.0, what="floor")
        if pin:  # for comparison, outside the pass/fail: the same run with the parsing in one process
            report("  the ETL and the floor both pinned to one core", t["one100k"], t["floor_one100k"], 2.0,
                   what="floor")
        report("  stretch: ETL at 100k on every usable core below the single-process floor", t["ours100k"],
               t["floor100k"], 1.0, what="floor")
        ok &= report("ETL growth 10k -> 100k deliveries", t["ours100k"], t["ours10k"], 11.0, what="10k")
        ok &= report("ETL peak memory at 100k deliveries", peak / 2**20, 1024, 1.0, unit="MiB", what="1 GiB goal")
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
