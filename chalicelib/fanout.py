"""A full run of a day too big for one invocation, fanned out: N workers, one share of the raw keys each, and a
merge that writes the day's files byte for byte as a single full run would.

Share i of N holds the raw deliveries whose sha256 name (its first four hex digits) falls in the i-th of N equal
ranges (`etl.name_range`), on every source. A worker lists only its range (S3 StartAfter, stopping at the next
range), parses it like a full run (`etl.read_day`: each version and status once, the first raw key in key order)
and writes its rows, in that order, to `etl/dt=D/shares/N/i/<table>.parquet`, labelled with the digest of the raw
keys it read. The merge lists the whole day as parallel ranges, checks each share's label against the share's
part of that listing, and keeps, in Arrow, for each version and status the copy from the raw key that sorts first
(which a single run would keep); then it finishes exactly as a full run does (`etl.finish_day`: the cross-day
check, the commit, the manifest) and removes the shares. Shares of another raw listing (deliveries arrived since)
are refused: the caller re-runs the workers. In AWS the workers are asynchronous invocations of `etl_share`
(`app.py`; docs/fresh.md).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from chalicelib import erasure, etl, layout, mentions, parquet, runlog
from chalicelib.schema import COLUMNS, arrow_schema
from chalicelib.storage import NotFound, Storage, side_by_side

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("chatlake.fanout")

# the columns that make a row one version (etl.version_key) or one status (etl.status_key), in their order
_KEY_COLUMNS = {"messages": ("source", "message_id", "edited_at", "message_type"),
                "statuses": ("message_id", "status")}


class ShareError(Exception):
    """The shares do not add up to the day's current raw listing: run the workers again."""


def share_of(key: str, shares: int) -> int:
    """Which of `shares` equal ranges of the sha256 name a raw key falls in (`etl.name_range`'s ranges)."""
    return int(runlog.raw_name(key)[:4], 16) * shares // etl.NAME_SPACE


#: A share's part of the day's mentions index (`chalicelib.mentions`), beside its tables.
MENTIONS = "mentions"


def run_share(storage: Storage, day: date, index: int, shares: int, pii_salt: str | None = None) -> int:
    """One worker: parse share `index` of `shares` and store its rows; returns how many deliveries it read."""
    mine = etl.list_raw_range(storage, day, index, shares)  # raises ValueError for a share that does not exist
    rows = etl.read_day(storage, mine, pii_salt, deny=erasure.load(storage, pii_salt))
    label = {"raw_digest": mine.digest, "pii": etl.pii_mark(pii_salt), "duplicates": str(rows.duplicates),
             "deliveries": str(len(mine.objects))}
    tables = {"messages": list(rows.messages.values()), "statuses": list(rows.statuses.values()),
              "rejects": rows.rejects}
    files = {t: etl.to_parquet(t, rows, label, sort=False) for t, rows in tables.items()}
    files[MENTIONS] = mentions.index_file(rows.mentions, pii_salt, mine.digest)  # the share of `forget`'s index
    side_by_side(storage, lambda name: storage.put(layout.share_key(day, shares, index, name), files[name]),
                 list(files))
    return len(mine.objects)


def _mentions(storage: Storage, day: date, shares: int, digests: list[str], pii_salt: str | None) -> dict[str, str]:
    """The day's mentions index entries from the shares' parts; none (then `forget` reads the day's raw data)
    when a part is missing, damaged or of other raw data: the index is best effort, like a full run's."""
    def part(index: int) -> dict[str, str] | None:
        data = mentions.read_file(storage, layout.share_key(day, shares, index, MENTIONS), pii_salt)
        return mentions.entries(data) if data is not None and mentions.covers(data, digests[index]) else None

    found: dict[str, str] = {}
    for entries in side_by_side(storage, part, list(range(shares))):
        if entries is None:
            return {}
        found.update(entries)
    return found


def _read_share(storage: Storage, day: date, shares: int, index: int, table: str) -> pa.Table:
    """A share's rows of one table (its label in the schema's metadata)."""
    import pyarrow.parquet as pq

    key = layout.share_key(day, shares, index, table)
    try:
        return pq.read_table(io.BytesIO(storage.get(key)))
    except NotFound:
        raise ShareError(f"share {index} of {shares} of {day} is missing ({key}): run its worker") from None


def _label(data: pa.Table) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}


@dataclass
class _Merged:
    """A table's rows of all shares in one Arrow table, and which of them a single run would keep."""

    data: pa.Table
    first: dict[tuple, int]  # key → position of its first copy in raw-key order (insertion in that order)
    duplicates: int


def _first_copies(table: str, data: pa.Table) -> _Merged:
    """Each version (status) once: the copy of the raw key that sorts first. The shares are concatenated in share
    order and each keeps a run's order, so a stable sort by raw_key gives a single run's order of first sight."""
    import pyarrow.compute as pc

    keys = list(zip(*(parquet.values(data, name) for name in _KEY_COLUMNS[table]), strict=True))
    first: dict[tuple, int] = {}
    duplicates = 0
    for position in pc.sort_indices(data, [("raw_key", "ascending")]).to_pylist():  # stable
        k = keys[position]
        if k in first:
            duplicates += 1
        else:
            first[k] = position
    return _Merged(data, first, duplicates)


def _write(table: str, data: pa.Table, positions: list[int]) -> bytes:
    """etl.to_parquet for rows already in Arrow: the same schema, sort and writer, hence the same bytes
    (tests/integration/test_fanout.py compares them with a single run's)."""
    import pyarrow as pa

    kept = data.take(pa.array(positions, pa.int64())) if positions != list(range(data.num_rows)) else data
    kept = pa.Table.from_arrays([kept.column(n).combine_chunks() for n in COLUMNS[table]], schema=arrow_schema(table))
    return parquet.table_bytes(etl.sorted_table(table, kept))


def merge(storage: Storage, day: date, shares: int, pii_salt: str | None = None, *,
          window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> etl.DayResult:
    """The final step: the shares → the day's files, as one full run (then the shares are removed)."""
    import pyarrow as pa

    started, started_at = time.perf_counter(), datetime.now(UTC)
    listings: dict[date, etl.RawListing] = {}
    mark = etl.pii_mark(pii_salt)
    parts = [(index, table) for index in range(shares) for table in layout.TABLES]
    ranges = max(1, storage.parallel_reads // (2 * len(layout.RAW_SOURCES)))  # the rest read the shares meanwhile
    # the day's listing (its ranges side by side) while the shares are read and merged
    with ThreadPoolExecutor(1, thread_name_prefix="merge-list") as pool:
        listed = pool.submit(etl.list_raw, storage, day, listings, ranges=ranges)
        read = side_by_side(storage, lambda part: _read_share(storage, day, shares, *part), parts)
        tables = {t: pa.concat_tables([data for (_, table), data in zip(parts, read, strict=True) if table == t])
                  for t in layout.TABLES}
        messages, statuses = (_first_copies(t, tables[t]) for t in ("messages", "statuses"))
        listing = listed.result()
    in_share: list[list[tuple[str, str]]] = [[] for _ in range(shares)]
    for source, key in listing.objects:
        in_share[share_of(key, shares)].append((source, key))
    digests = [etl.RawListing(day, tuple(objects)).digest for objects in in_share]
    duplicates = 0
    for (index, table), data in zip(parts, read, strict=True):
        label = _label(data)
        if (label.get("raw_digest"), label.get("pii")) != (digests[index], mark):
            raise ShareError(f"share {index} of {shares} of {day} was made from other raw data or PII settings: "
                             "run the workers again")
        if table == "messages":
            duplicates += int(label.get("duplicates", "0"))
    # DayRows whose rows are positions in the Arrow tables: finish_day filters them and `_write` takes them
    merged = etl.DayRows(listing, messages.first, statuses.first, list(range(tables["rejects"].num_rows)),
                         duplicates + messages.duplicates + statuses.duplicates,
                         _mentions(storage, day, shares, digests, pii_salt))
    result = etl.finish_day(storage, merged, pii_salt, window, listings, started, started_at,
                            write=lambda table, positions: _write(table, tables[table], positions))
    side_by_side(storage, storage.delete, list(storage.keys(layout.share_prefix(day, shares))))
    return result


# --- in AWS: the schedule starts the workers, the last worker to land merges ------------------------------------

#: The most workers a day is split into (the merge reads 4 share files per worker in one invocation).
MAX_SHARES = 64
#: The worker function `app.py` declares (`@app.lambda_function`); chalice names it `<app>-<stage>-etl_share`.
WORKER_FUNCTION = "etl_share"
Invoke = Callable[[dict[str, Any]], None]


def shares_for(deliveries: int, threshold: int) -> int:
    """How many workers a day of `deliveries` is fanned out over: 0 (one invocation runs it) up to `threshold`
    (0: never), else shares of about half the threshold each."""
    if threshold <= 0 or deliveries <= threshold:
        return 0
    return min(MAX_SHARES, max(2, -(-deliveries * 2 // threshold)))


def worker_function(own_name: str, own_function: str) -> str:
    """The worker's Lambda name, from the caller's own (AWS_LAMBDA_FUNCTION_NAME): both are `<app>-<stage>-…`."""
    if not own_name.endswith(own_function):
        raise ValueError(f"{own_name!r} is not a chalice name of {own_function!r}")
    return own_name[: -len(own_function)] + WORKER_FUNCTION


def lambda_invoker(client: Any, function_name: str) -> Invoke:
    """Each call starts one worker invocation asynchronously (InvocationType=Event: Lambda queues it, retries a
    failed one twice, and the caller does not wait)."""
    def invoke(payload: dict[str, Any]) -> None:
        client.invoke(FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode())

    return invoke


def fan_out_over(storage: Storage, threshold: int, invoke: Invoke) -> Callable[[etl.RawListing], etl.DayResult | None]:
    """For `etl.catch_up`: a day over `threshold` deliveries is dispatched to workers (its result says so, and
    the last worker commits it); None lets the caller run the day in this invocation."""
    def fan_out(listing: etl.RawListing) -> etl.DayResult | None:
        shares = shares_for(len(listing.objects), threshold)
        return dispatch(storage, listing, shares, invoke) if shares else None

    return fan_out


def dispatch(storage: Storage, listing: etl.RawListing, shares: int, invoke: Invoke) -> etl.DayResult:
    """Start a fanned-out full run of the listing's day: earlier shares and claims removed, then one worker
    invocation per share. Nothing is committed here: the day stays behind until the merge commits it."""
    day = listing.day
    side_by_side(storage, storage.delete, list(storage.keys(layout.etl_prefix(day) + "shares/")))
    for index in range(shares):
        invoke({"day": day.isoformat(), "share": index, "shares": shares})
    result = etl.DayResult(day, deliveries=len(listing.objects))
    result.warnings.append(f"{day}: {len(listing.objects)} deliveries, fanned out over {shares} {WORKER_FUNCTION} "
                           "invocations; the last one to finish merges and commits the day")
    log.info("%s", result.warnings[-1])
    return result


@dataclass(frozen=True)
class Task:
    """One worker invocation's payload."""

    day: date
    share: int
    shares: int

    @classmethod
    def from_event(cls, event: Any) -> Task:
        """The payload `dispatch` sent; ValueError for anything else (an invocation by hand with a typo)."""
        try:
            task = cls(date.fromisoformat(event["day"]), int(event["share"]), int(event["shares"]))
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f'a worker needs {{"day": "YYYY-MM-DD", "share": i, "shares": n}}, not {event!r}') from e
        etl.name_range(task.share, task.shares)  # raises ValueError for a share that does not exist
        return task


def work(storage: Storage, task: Task, pii_salt: str | None = None, *,
         window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> dict[str, Any]:
    """A worker invocation: its share; then, if every share has landed, the one worker whose claim is written
    first (put if absent) merges. A merge that fails on a storage error gives its claim back and raises (Lambda
    retries the invocation); one refused for changed raw data leaves the day behind for the next catch-up."""
    read = run_share(storage, task.day, task.share, task.shares, pii_salt)
    out: dict[str, Any] = {"day": task.day.isoformat(), "share": task.share, "shares": task.shares,
                           "deliveries": read, "merged": None}
    landed = set(storage.keys(layout.share_prefix(task.day, task.shares)))
    files = (*layout.TABLES, MENTIONS)
    if any(layout.share_key(task.day, task.shares, i, f) not in landed for i in range(task.shares) for f in files):
        return out
    claim = layout.share_claim_key(task.day, task.shares)
    if not storage.put(claim, b"", overwrite=False):
        return out  # another worker landed at the same time and merges
    try:
        out["merged"] = merge(storage, task.day, task.shares, pii_salt, window=window).as_dict()
    except ShareError as e:
        log.warning("%s: not merged (%s); the day stays behind until the next catch-up", task.day, e)
        out["error"] = str(e)
    except Exception:
        storage.delete(claim)
        raise
    return out
