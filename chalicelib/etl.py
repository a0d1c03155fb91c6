"""The daily ETL: a day's raw deliveries → Parquet `messages`, `statuses` and `rejects`, exactly once.

For day D: list `raw/source=*/dt=D/`, read the bodies (concurrently, a bounded window), parse each with
its platform's parser, drop what an earlier delivery of D or of the 7 days before already gave, and
replace `enriched/<table>/dt=D/` with one zstd Parquet file per table. The file has a fixed name and is
replaced in one atomic write, so readers see the old day or the new day, never an empty or doubled one;
files left by anything else in that folder are removed after the new one is in place. The raw layer is
only read. pyarrow and orjson are imported here, never on the webhook path.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

from . import lake, pii, telegram, whatsapp
from .schema import COLUMNS, Message, Parsed, Reject, Status, arrow_schema
from .storage import Storage, StorageError

log = logging.getLogger("chatlake.etl")

LOOKBACK_DAYS = 7  # WhatsApp retries a delivery for up to 7 days
PART_NAME = "part-0.parquet"
PARSERS: dict[str, Callable[[dict[str, Any], str], Parsed]] = {
    "telegram": telegram.parse,
    "whatsapp": whatsapp.parse,
}
# Sort keys, so that re-running a day gives byte-identical files.
SORT_KEYS = {
    "messages": ["sent_at", "source", "message_id", "edited_at"],
    "statuses": ["status_at", "message_id", "status"],
    "rejects": ["source", "raw_key", "reason"],
}

Progress = Callable[[int, int], None]  # (deliveries done, deliveries in all)


@dataclass
class DayResult:
    """What one day's ETL did, for the CLI, the schedule's log and the tests."""

    day: date
    deliveries: int = 0
    messages: int = 0
    statuses: int = 0
    rejects: int = 0
    duplicates: int = 0  # rows already given by an earlier delivery (a retry) or an earlier day
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.day}: {self.deliveries} deliveries -> {self.messages} messages, {self.statuses} statuses, "
                f"{self.rejects} rejects ({self.duplicates} duplicates dropped) in {self.seconds:.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), date) else v) for f in fields(self)}


def yesterday(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).date() - timedelta(days=1)


def decode(body: bytes) -> Any:
    """JSON from bytes: orjson for speed, the standard library for what orjson refuses but JSON allows
    (lone surrogate escapes, NaN, huge integers), so nothing the webhook accepted is rejected here. An integer
    past Python's int-string limit stays its digit string, as the webhook reads it."""
    import orjson

    from .webhook import json_int

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # only the int-string limit raises a plain ValueError: read again, keeping the digits
        return json.loads(text, parse_int=json_int)


def parse_delivery(source: str, raw_key: str, body: bytes) -> Parsed:
    """One raw delivery → rows, or problems; never raises (a parser bug becomes a reject, not a lost day)."""
    try:
        value = decode(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        return Parsed(problems=[f"the raw delivery is not readable JSON ({e}); it should have been quarantined"])
    if not isinstance(value, dict):
        return Parsed(problems=[f"the raw delivery is JSON but not an object (a {type(value).__name__})"])
    try:
        return PARSERS[source](value, raw_key)
    except Exception as e:  # the day must complete; the reason goes to rejects
        log.exception("parser failed on %s", raw_key)
        return Parsed(problems=[f"chatlake's {source} parser failed ({type(e).__name__}: {e}); the raw delivery is "
                                "kept: report this raw_key so the parser can be fixed, then re-run the day"])


def read_bodies(storage: Storage, keys: list[str], workers: int) -> Iterator[tuple[str, bytes]]:
    """Bodies in the order of `keys`, read ahead by `workers` threads while the caller parses (S3).

    Keys go to the threads in chunks (one task per chunk, not per key: the per-task cost would
    otherwise rival a local read), with a bounded number of chunks in flight.
    """
    if workers <= 1:  # a local disk: threads only add switching and GIL contention
        for key in keys:
            yield key, storage.get(key)
        return
    chunk = max(1, min(64, len(keys) // (workers * 8) or 1))
    chunks = [keys[i:i + chunk] for i in range(0, len(keys), chunk)]
    window = 4 * workers

    def read(batch: list[str]) -> list[bytes]:
        return [storage.get(k) for k in batch]

    with ThreadPoolExecutor(workers, thread_name_prefix="etl-read") as pool:
        pending = deque(pool.submit(read, c) for c in chunks[:window])
        for i, batch in enumerate(chunks):
            bodies = pending.popleft().result()
            if i + window < len(chunks):
                pending.append(pool.submit(read, chunks[i + window]))
            yield from zip(batch, bodies, strict=True)


def raw_keys(storage: Storage, day: date) -> list[tuple[str, str]]:
    """The day's raw deliveries as (source, key), in key order: among copies of one message received the
    same day, the row keeps the first raw key in that order, so re-runs pick the same one."""
    return [(source, key) for source in lake.SOURCES for key in storage.keys(lake.raw_prefix(source, day))
            if key.endswith(".json")]


def earlier_keys(storage: Storage, day: date, warnings: list[str]) -> tuple[set[tuple], set[tuple]]:
    """Message and status keys already in the 7 days before `day`. A file that cannot be read is reported
    and skipped, so one corrupt file cannot stop the day."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages: set[tuple] = set()
    statuses: set[tuple] = set()
    for back in range(1, LOOKBACK_DAYS + 1):
        d = day - timedelta(days=back)
        for table, columns, into in (("messages", ["source", "message_id", "edited_at"], messages),
                                     ("statuses", ["message_id", "status"], statuses)):
            for obj in storage.list(lake.enriched_prefix(table, d)):
                if not obj.key.endswith(".parquet"):
                    continue
                # Damage can surface while decoding the values too (bad UTF-8, a column of another type, values
                # that cannot be set members, an encoding pyarrow does not implement), as any pyarrow error.
                try:
                    data = pq.read_table(io.BytesIO(storage.get(obj.key)), columns=columns)
                    if "edited_at" in columns:
                        data = data.set_column(2, "edited_at", data.column("edited_at").cast("int64"))
                    found = set(zip(*(data.column(c).to_pylist() for c in columns), strict=True))
                except (OSError, ValueError, TypeError, StorageError, pa.ArrowException) as e:
                    warnings.append(f"could not read {obj.key} for the {LOOKBACK_DAYS}-day duplicate check ({e}); "
                                    f"rows it holds may be written again today: re-run the ETL for {d}")
                    continue
                into.update(found)
    return messages, statuses


def to_parquet(table: str, rows: list[Any]) -> bytes:
    """Rows → one zstd Parquet file with the table's fixed schema, sorted for stable output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(table)
    names = list(COLUMNS[table])
    columns = zip(*map(attrgetter(*names), rows), strict=True) if rows else ([] for _ in names)
    arrays = [pa.array(list(values), type=schema.field(name).type) for name, values in zip(names, columns, strict=True)]
    data = pa.Table.from_arrays(arrays, schema=schema)
    if len(rows) > 1:
        data = data.sort_by([(k, "ascending") for k in SORT_KEYS[table]])
    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd", use_dictionary=True, write_statistics=True)
    return buffer.getvalue()


def replace_partition(storage: Storage, table: str, day: date, data: bytes) -> None:
    """Put the day's new file (one atomic write), then remove whatever else the folder holds."""
    prefix = lake.enriched_prefix(table, day)
    target = prefix + PART_NAME
    storage.put(target, data)
    for obj in list(storage.list(prefix)):
        if obj.key != target:
            storage.delete(obj.key)


def run_day(storage: Storage, day: date, pii_salt: str | None = None, progress: Progress | None = None) -> DayResult:
    """The ETL for one day (see the module's docstring)."""
    # Rows are many small objects that all live until the day is written: the cyclic garbage collector
    # would rescan them again and again for nothing (there are no reference cycles to find here).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_day(storage, day, pii_salt, progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _run_day(storage: Storage, day: date, pii_salt: str | None, progress: Progress | None) -> DayResult:
    started = time.perf_counter()
    result = DayResult(day)
    objects = raw_keys(storage, day)
    result.deliveries = len(objects)
    seen_messages, seen_statuses = earlier_keys(storage, day, result.warnings)
    messages: dict[tuple, Message] = {}
    statuses: dict[tuple, Status] = {}
    rejects: list[Reject] = []
    sources = {key: source for source, key in objects}
    for done, (key, body) in enumerate(read_bodies(storage, list(sources), storage.parallel_reads), 1):
        source = sources[key]
        parsed = parse_delivery(source, key, body)
        for m in parsed.messages:
            k = (m.source, m.message_id, m.edited_at)
            if k in messages or k in seen_messages:
                result.duplicates += 1
            else:
                messages[k] = m
        for s in parsed.statuses:
            k = (s.message_id, s.status)
            if k in statuses or k in seen_statuses:
                result.duplicates += 1
            else:
                statuses[k] = s
        rejects.extend(Reject(source, key, reason) for reason in parsed.problems)
        if progress and (done % 1000 == 0 or done == len(objects)):
            progress(done, len(objects))
    if pii_salt:
        pii.hash_rows(messages.values(), statuses.values(), pii_salt)
    for table, rows in (("messages", list(messages.values())), ("statuses", list(statuses.values())),
                        ("rejects", rejects)):
        replace_partition(storage, table, day, to_parquet(table, rows))
    result.messages, result.statuses, result.rejects = len(messages), len(statuses), len(rejects)
    result.seconds = time.perf_counter() - started
    for w in result.warnings:
        log.warning("%s", w)
    log.info("%s", result.summary())
    return result


def run_days(storage: Storage, days: Iterable[date], pii_salt: str | None = None,
             on_day: Callable[[DayResult], None] | None = None) -> list[DayResult]:
    """The ETL for several days, oldest first (each day's duplicate check sees the days before it)."""
    results = []
    for d in sorted(days):
        results.append(run_day(storage, d, pii_salt))
        if on_day:
            on_day(results[-1])
    return results
