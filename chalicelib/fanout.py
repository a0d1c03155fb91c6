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
from datetime import UTC, date, datetime
from typing import Any

from chalicelib import erasure, etl, layout, runlog
from chalicelib.schema import Message, Reject, Status
from chalicelib.storage import NotFound, Storage

_ROW_TYPES = {"messages": Message, "statuses": Status, "rejects": Reject}
_RANGE = 16 ** 4


class ShareError(Exception):
    """The shares do not add up to the day's current raw listing: run the workers again."""


def share_of(key: str, shares: int) -> int:
    """Which of `shares` equal ranges of the sha256 name a raw key falls in."""
    return int(runlog.raw_name(key)[:4], 16) * shares // _RANGE


def run_share(storage: Storage, day: date, index: int, shares: int, pii_salt: str | None = None) -> int:
    """One worker: parse share `index` of `shares` and store its rows; returns how many deliveries it read."""
    import pyarrow.parquet as pq

    if not 0 <= index < shares <= _RANGE:
        raise ValueError(f"share {index} of {shares} does not exist")
    listing = etl.list_raw(storage, day)
    mine = etl.RawListing(day, tuple((s, k) for s, k in listing.objects if share_of(k, shares) == index))
    rows = etl.read_day(storage, mine, pii_salt, deny=erasure.load(storage, pii_salt))
    label = {"raw_digest": listing.digest, "pii": etl.pii_mark(pii_salt), "duplicates": str(rows.duplicates),
             "deliveries": str(len(mine.objects))}
    tables = {"messages": list(rows.messages.values()), "statuses": list(rows.statuses.values()),
              "rejects": rows.rejects}
    for table, table_rows in tables.items():
        data = pq.read_table(io.BytesIO(etl.to_parquet(table, table_rows, sort=False)))
        buffer = io.BytesIO()
        pq.write_table(data.replace_schema_metadata(label), buffer, compression="zstd")
        storage.put(layout.share_key(day, shares, index, table), buffer.getvalue())
    return len(mine.objects)


def _read_share(storage: Storage, day: date, shares: int, index: int, table: str,
                listing: etl.RawListing, mark: str) -> tuple[list[Any], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = layout.share_key(day, shares, index, table)
    try:
        data = pq.read_table(io.BytesIO(storage.get(key)))
    except NotFound:
        raise ShareError(f"share {index} of {shares} of {day} is missing ({key}): run its worker") from None
    meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
    if (meta.get("raw_digest"), meta.get("pii")) != (listing.digest, mark):
        raise ShareError(f"share {index} of {shares} of {day} was made from other raw data or PII settings: "
                         "run the workers again")
    columns = {}
    for name in data.column_names:
        column = data.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())  # rows carry ms since the epoch, as the parsers give them
        columns[name] = column.to_pylist()
    row_type = _ROW_TYPES[table]
    rows = [row_type(**dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True)]
    return rows, int(meta.get("duplicates", "0"))


def merge(storage: Storage, day: date, shares: int, pii_salt: str | None = None, *,
          window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> etl.DayResult:
    """The final step: the shares → the day's files, as one full run (then the shares are removed)."""
    started, started_at = time.perf_counter(), datetime.now(UTC)
    listings: dict[date, etl.RawListing] = {}
    listing = etl.list_raw(storage, day, listings)
    mark = etl.pii_mark(pii_salt)
    merged = etl.DayRows(listing)
    found: dict[str, list[Any]] = {"messages": [], "statuses": [], "rejects": []}
    for index in range(shares):
        for table in found:
            rows, duplicates = _read_share(storage, day, shares, index, table, listing, mark)
            found[table] += rows
            if table == "messages":
                merged.duplicates += duplicates
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
    for key in list(storage.keys(layout.share_prefix(day, shares))):
        storage.delete(key)
    return result
