"""Fresh and big: the ETL on a simulated S3 (fixed latency per request), intraday runs, and a fanned-out day.

- `LatencyStorage` wraps the folder backend and sleeps per request as S3 roughly answers from Lambda: 15 ms a
  GET, 30 ms a PUT or DELETE, 25 ms a LIST page of 1,000 keys. Reads run `S3Storage.parallel_reads` (32) at once,
  as on S3. The ideal of a run is what its necessary requests cost at that concurrency: the day's listing (pages
  are sequential) plus each raw object it must read × 15 ms ÷ 32. Everything else (records, output, the CPU)
  counts against it.
- Full ETL and an intraday run (finding 1% new deliveries) at 10k and 100k deliveries: deliveries/s, ratio to
  the ideal (goal <= 1.5x), and the full run of 1M deliveries extrapolated from 100k (goal < 10 min).
- Fan-out: 4 workers (one share each, by sha256-name prefix) and the merge, against one full run at 100k on the
  same simulated store (goal: about a quarter, <= 0.35x), extrapolated to 1M. The workers are processes, as on
  Lambda each is an invocation of its own (there with its own CPU; here the 4 share this machine's 2 cores). As
  threads of one process, as they were first, the 4 parsers and 4 x 32 readers queued on one interpreter lock,
  which no Lambda has: 15.5 s a worker against 13.2 s as processes, measured side by side.
  `CHATLAKE_BENCH_FRESH=fanout .venv/bin/python -m bench fresh` runs only this part (with its own full run).
- On the folder lake (no added latency), in one process after imports: an intraday run finding 1% new deliveries
  against a full run of that 100k day (goal <= 5%). In-process, because both would pay the same interpreter
  start (about 0.5 s, a warm Lambda pays none) and this compares the runs' work.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bench.common import report

DAY = date(2026, 11, 24)
GET_S, PUT_S, LIST_PAGE_S, PAGE = 0.015, 0.030, 0.025, 1000
CONCURRENCY = 32  # S3Storage.parallel_reads
MILLION = 1_000_000


@dataclass
class Requests:
    gets: int = 0
    puts: int = 0
    pages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + n)


class LatencyStorage:
    """A folder lake that answers like S3: a fixed sleep per request (threads sleep side by side, as S3 requests
    wait side by side), and S3's read concurrency."""

    parallel_reads = CONCURRENCY

    def __init__(self, root: Path) -> None:
        from chalicelib.storage import FolderStorage

        self.inner = FolderStorage(root)
        self.url = self.inner.url
        self.requests = Requests()

    def get(self, key: str) -> bytes:
        time.sleep(GET_S)
        self.requests.add("gets")
        return self.inner.get(key)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        time.sleep(PUT_S)
        self.requests.add("puts")
        return self.inner.put(key, data, overwrite=overwrite)

    def delete(self, key: str) -> None:
        time.sleep(PUT_S)
        self.requests.add("puts")
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator:
        return self._paged(self.inner.list(prefix))

    def keys(self, prefix: str, *, after: str = "", before: str = "") -> Iterator[str]:
        # S3's listing costs the same with or without times; the folder's `list` would stat every file for them.
        # A range (StartAfter, stopping at `before`) pays only its own pages.
        return self._paged(self.inner.keys(prefix, after=after, before=before))

    def _paged(self, items: Iterator) -> Iterator:
        time.sleep(LIST_PAGE_S)  # the first page, even when empty
        self.requests.add("pages")
        for n, item in enumerate(items, 1):
            if n % PAGE == 0:
                time.sleep(LIST_PAGE_S)
                self.requests.add("pages")
            yield item


def ideal(listed: int, read: int) -> float:
    """The necessary requests' time: the listing's pages one after the other, the reads 32 at a time."""
    return (listed // PAGE + 1) * LIST_PAGE_S + read * GET_S / CONCURRENCY


def make_lake(root: Path, n: int, seed: int = 42) -> int:
    from chalicelib.storage import FolderStorage
    from chatlake.local import synthetic

    return synthetic.store(FolderStorage(root), synthetic.deliveries(n, seed=seed, day=DAY))


def add_new(root: Path, n: int, seed: int) -> int:
    """Deliveries arriving after the last run (another seed: other bodies, other keys)."""
    return make_lake(root, n, seed)


def _share(root: Path, index: int, shares: int) -> float:
    from chalicelib import fanout

    started = time.perf_counter()
    fanout.run_share(LatencyStorage(root), DAY, index, shares)  # a store of its own: its own 32 reads at once
    return time.perf_counter() - started


def simulated(work: Path) -> bool:
    from chalicelib import etl, intraday

    ok = True
    for n in (10_000, 100_000):
        root = work / f"s3-{n}"
        stored = make_lake(root, n)
        lake = LatencyStorage(root)
        started = time.perf_counter()
        etl.run_day(lake, DAY)
        full = time.perf_counter() - started
        ok &= report(f"simulated S3, full ETL at {n // 1000}k ({stored / full:,.0f} deliveries/s)", full,
                     ideal(stored, stored), 1.5, what="ideal")
        new = add_new(root, n // 100, seed=7)
        lake = LatencyStorage(root)
        started = time.perf_counter()
        result = intraday.run_refresh(lake, DAY)
        refresh = time.perf_counter() - started
        assert result.deliveries == new, (result.deliveries, new)
        ok &= report(f"simulated S3, intraday run at {n // 1000}k finding {new} new ({new / refresh:,.0f} new "
                     f"deliveries/s; {lake.requests.gets} GETs, {lake.requests.pages} LIST pages, "
                     f"{lake.requests.puts} PUTs)", refresh, ideal(stored + new, new), 1.5, what="ideal")
        if n == 100_000:
            ok &= report("simulated S3, full ETL of 1M deliveries in one function (extrapolated x10 from 100k)",
                         full * MILLION / n, 600, 1.0, what="the 10 min goal")
            ok &= fanned_out(root, full)
    return ok


def fanned_out(root: Path, one_function: float) -> bool:
    """4 workers + the merge on the 100k day of `root`, against one function's full run of it (`one_function`
    seconds, measured in the same run)."""
    from chalicelib import fanout

    shutil.rmtree(root / "etl", ignore_errors=True)  # the fanned-out run starts from the same raw data, no output
    shutil.rmtree(root / "enriched", ignore_errors=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        workers = list(pool.map(_share, [root] * 4, range(4), [4] * 4))
    merged_at = time.perf_counter()
    lake = LatencyStorage(root)
    fanout.merge(lake, DAY, 4)
    fanned = time.perf_counter() - started
    merge = fanned - (merged_at - started)
    print(f"  4 workers: {', '.join(f'{w:.1f}' for w in workers)} s; merge {merge:.1f} s ({lake.requests.gets} "
          f"GETs, {lake.requests.pages} LIST pages, {lake.requests.puts} PUTs/DELETEs)", flush=True)
    ok = report("simulated S3, 4 workers + merge vs one full run at 100k", fanned, one_function, 0.35,
                what="one function")
    print(f"  1M extrapolated x10: 4 workers + merge {fanned * 10 / 60:.1f} min vs one function "
          f"{one_function * 10 / 60:.1f} min", flush=True)
    return ok


def fanout_only(work: Path) -> bool:
    """`CHATLAKE_BENCH_FRESH=fanout`: only the fan-out comparison (its one full run, then the fanned-out run)."""
    from chalicelib import etl

    root = work / "s3-100000"
    make_lake(root, 100_000)
    started = time.perf_counter()
    etl.run_day(LatencyStorage(root), DAY)
    return fanned_out(root, time.perf_counter() - started)


def folder(work: Path) -> bool:
    """Intraday finding 1% new vs a full run, on the folder lake, in one process (imports done)."""
    from chalicelib import etl, intraday, layout
    from chalicelib.storage import FolderStorage

    root = work / "folder-100k"
    make_lake(root, 99_000)
    lake = FolderStorage(root)
    etl.run_day(lake, DAY)  # warm-up and the state before the new deliveries
    new = add_new(root, 1_000, seed=9)
    refreshes, fulls = [], []
    for _ in range(2):
        started = time.perf_counter()
        result = intraday.run_refresh(lake, DAY)
        refreshes.append(time.perf_counter() - started)
        assert result.deliveries == new, (result.deliveries, new)
        for key in [*result.files.values(), layout.run_key(DAY, result.run)]:  # undo it: the 1% are new again
            lake.delete(key)
    for _ in range(2):
        started = time.perf_counter()
        etl.run_day(lake, DAY)
        fulls.append(time.perf_counter() - started)
    return report("intraday run finding 1% new deliveries vs a full run of the 100k day (folder, in-process)",
                  min(refreshes), min(fulls), 0.05, what="full run")


def run() -> bool:
    """`CHATLAKE_BENCH_FRESH=folder` runs only the folder-lake part (seconds, not minutes: for work on intraday)."""
    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-fresh-"))
    try:
        if os.environ.get("CHATLAKE_BENCH_FRESH") == "fanout":
            return fanout_only(work)
        ok = folder(work)
        if os.environ.get("CHATLAKE_BENCH_FRESH", "") != "folder":
            ok &= simulated(work)
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
