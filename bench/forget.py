"""`forget` against a full `backfill` of the same days, measured side by side on the same folder lake.

A synthetic lake over 30 days (every kind of delivery, the same people every day), backfilled; then, alternating,
the backfill of all 30 days again and `forget --phone` of one WhatsApp customer on a fresh copy of the lake (the copy
is not timed). Goal: forget <= 0.3x the backfill: it reads only the raw objects that the ETL's per-day mentions
index (`chalicelib.mentions`, which the backfill writes as part of its work) cannot rule out, and rewrites only the
files that hold the person. The issue asks for a 1M-row lake (BENCH_FORGET_DELIVERIES=1000000; deliveries ≈ rows);
`make bench` runs 60k deliveries by default, as building and backfilling 1M takes tens of minutes on the 2-core
machine. BENCH_FORGET_ROUNDS (default 2) sets the rounds; the best of each side is compared.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import report

LAST = date(2026, 11, 24)
DAYS = 30


def run(rounds: int | None = None) -> bool:
    from chalicelib import etl
    from chalicelib.storage import FolderStorage
    from chatlake import forget
    from chatlake.local import synthetic

    n = int(os.environ.get("BENCH_FORGET_DELIVERIES", "60000"))
    rounds = rounds or int(os.environ.get("BENCH_FORGET_ROUNDS", "2"))
    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-forget-"))
    try:
        base = FolderStorage(work / "lake")
        batch = synthetic.deliveries(n, seed=7, day=LAST, days=DAYS)
        stored = synthetic.store(base, batch)
        days = synthetic.calendar(LAST, DAYS)
        results = etl.run_days(base, days)
        rows = sum(r.messages + r.statuses for r in results)
        phone = next(b for b in batch if b.source == "whatsapp" and b.messages).body.split(b'"from":"')[1][:20]
        phone_text = phone.split(b'"')[0].decode()
        print(f"  {stored:,} raw objects, {rows:,} rows over {DAYS} days; forgetting one customer", flush=True)

        backfills, forgets = [], []
        for i in range(rounds):
            start = time.perf_counter()
            etl.run_days(base, days)
            backfills.append(time.perf_counter() - start)
            copy = work / f"copy{i}"
            shutil.copytree(work / "lake", copy)
            lake = FolderStorage(copy)
            start = time.perf_counter()
            subject = forget.Subject.parse("phone", phone_text)
            plan = forget.make_plan(lake, subject, None)
            forget.apply(lake, plan, None, etl.DEFAULT_RETRY_WINDOW_DAYS)
            forgets.append(time.perf_counter() - start)
            removed = sum(v["rows"] for v in plan.rows.values())
            print(f"  round {i + 1}: backfill {backfills[-1]:.1f} s, forget {forgets[-1]:.1f} s ({removed} rows, "
                  f"{len(plan.delete)} objects deleted, {len(plan.redact)} redacted, {len(plan.days)} days; read "
                  f"{plan.read:,} of {plan.scanned:,} objects)", flush=True)
            shutil.rmtree(copy)
        return report(f"forget one customer, {rows:,} rows / {DAYS} days", min(forgets), min(backfills), 0.3,
                      what="backfill of the same days")
    finally:
        shutil.rmtree(work, ignore_errors=True)
