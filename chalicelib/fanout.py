"""A full run of a day too big for one invocation, fanned out: N workers, one share of the raw keys each, and a
merge that writes the day's files byte for byte as a single full run would.

Share i of N holds the raw deliveries whose sha256 name (its first four hex digits) falls in the i-th of N equal
ranges, on both sources. A worker lists the day, parses its share like a full run (`etl.read_day`: each version
and status once, the first raw key in key order) and writes its rows, in that order, to
`etl/dt=D/shares/N/i/<table>.parquet`, labelled with the day's raw digest. The merge reads the N shares, keeps
for each version and status the copy from the raw key that sorts first (which a single run would keep), and
finishes exactly as a full run does (`etl.finish_day`: the cross-day check, the commit, the manifest), then
removes the shares. Shares of another raw listing (deliveries arrived since) are refused: the caller re-runs
the workers. In AWS the workers are asynchronous invocations of the ETL function (see docs/fresh.md).
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, date, datetime
from itertools import starmap
from typing import Any

from chalicelib import erasure, etl, layout, runlog
from chalicelib.schema import Message, Reject, Status
from chalicelib.storage import NotFound, Storage, side_by_side

_ROW_TYPES = {"messages": Message, "statuses": Status, "rejects": Reject}
_RANGE = 16 ** 4


class ShareError(Exception):
    """The shares do not add up to the day's current raw listing: run the workers again."""


def share_of(key: str, shares: int) -> int:
    """Which of `shares` equal ranges of the sha256 name a raw key falls in."""
    return int(runlog.raw_name(key)[:4], 16) * shares // _RANGE


def run_share(storage: Storage, day: date, index: int, shares: int, pii_salt: str | None = None) -> int:
    """One worker: parse share `index` of `shares` and store its rows; returns how many deliveries it read."""
    if not 0 <= index < shares <= _RANGE:
        raise ValueError(f"share {index} of {shares} does not exist")
    listing = etl.list_raw(storage, day)
    mine = etl.RawListing(day, tuple((s, k) for s, k in listing.objects if share_of(k, shares) == index))
    rows = etl.read_day(storage, mine, pii_salt, deny=erasure.load(storage, pii_salt))
    label = {"raw_digest": listing.digest, "pii": etl.pii_mark(pii_salt), "duplicates": str(rows.duplicates),
             "deliveries": str(len(mine.objects))}
    tables = {"messages": list(rows.messages.values()), "statuses": list(rows.statuses.values()),
              "rejects": rows.rejects}
    side_by_side(storage, lambda table: storage.put(layout.share_key(day, shares, index, table),
                                                    etl.to_parquet(table, tables[table], label, sort=False)),
                 list(tables))
    return len(mine.objects)


def _read_share(storage: Storage, day: date, shares: int, index: int, table: str) -> tuple[list[Any], dict[str, str]]:
    """A share's rows of one table, and its label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = layout.share_key(day, shares, index, table)
    try:
        data = pq.read_table(io.BytesIO(storage.get(key)))
    except NotFound:
        raise ShareError(f"share {index} of {shares} of {day} is missing ({key}): run its worker") from None
    meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
    columns = []
    row_type = _ROW_TYPES[table]
    for f in fields(row_type):  # in the dataclass's order: rows are built positionally (100k of them)
        column = data.column(f.name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())  # rows carry ms since the epoch, as the parsers give them
        columns.append(column.to_pylist())
    return list(starmap(row_type, zip(*columns, strict=True))), meta


def merge(storage: Storage, day: date, shares: int, pii_salt: str | None = None, *,
          window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> etl.DayResult:
    """The final step: the shares → the day's files, as one full run (then the shares are removed)."""
    started, started_at = time.perf_counter(), datetime.now(UTC)
    listings: dict[date, etl.RawListing] = {}
    mark = etl.pii_mark(pii_salt)
    found: dict[str, list[Any]] = {"messages": [], "statuses": [], "rejects": []}
    parts = [(index, table) for index in range(shares) for table in found]
    with ThreadPoolExecutor(1, thread_name_prefix="merge-list") as pool:  # the day's listing while shares are read
        listed = pool.submit(etl.list_raw, storage, day, listings)
        read = side_by_side(storage, lambda part: _read_share(storage, day, shares, *part), parts)
        listing = listed.result()
    merged = etl.DayRows(listing)
    for (index, table), (rows, meta) in zip(parts, read, strict=True):  # in share order
        if (meta.get("raw_digest"), meta.get("pii")) != (listing.digest, mark):
            raise ShareError(f"share {index} of {shares} of {day} was made from other raw data or PII settings: "
                             "run the workers again")
        found[table] += rows
        if table == "messages":
            merged.duplicates += int(meta.get("duplicates", "0"))
    # a single run keeps the copy of the first raw key in key order: so does the merge (sorts are stable)
    for m in sorted(found["messages"], key=lambda r: r.raw_key):
        k = etl.version_key(m)
        if k in merged.messages:
            merged.duplicates += 1
        else:
            merged.messages[k] = m
    for s in sorted(found["statuses"], key=lambda r: r.raw_key):
        k = etl.status_key(s)
        if k in merged.statuses:
            merged.duplicates += 1
        else:
            merged.statuses[k] = s
    merged.rejects = found["rejects"]
    result = etl.finish_day(storage, merged, pii_salt, window, listings, started, started_at)
    side_by_side(storage, storage.delete, list(storage.keys(layout.share_prefix(day, shares))))
    return result
