"""The daily ETL: a day's raw deliveries → Parquet `messages`, `statuses` and `rejects`, exactly once.

A day's output is a function of the raw layer alone, so the order in which days are run (or re-run, or fail)
never changes it. For day D: list `raw/source=*/dt=D/`, read and parse the bodies (each message version and
status once: the first raw key in key order), then drop the versions and statuses that any raw delivery of the
retry window's earlier days (D-1 … D-`RETRY_WINDOW_DAYS`) also gives. Those come from the earlier days' version
files (`etl/dt=…/versions.parquet`: everything a day's raw gives, before this check), checked against their raw
listing and rebuilt from raw when stale or missing, never from the earlier days' tables (which may be missing,
stale or being rewritten).

The day's three tables are then committed together: `etl/dt=D/commit.json` is removed, each table's one
file is replaced in one atomic write, and a new commit record names the raw data it was built from. A run
that fails puts the previous files back; one that is killed leaves no commit record, so `status` calls the day
behind until a run completes. The raw layer is only read. pyarrow and orjson are imported here, never on the
webhook path.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import marshal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from operator import attrgetter
from typing import Any

from chalicelib import erasure, eum, layout, mentions, multicore, parquet, pii, runlog, telegram, whatsapp
from chalicelib.schema import COLUMNS, Message, Parsed, Reject, Status, arrow_schema
from chalicelib.storage import NotFound, Storage, StorageError, side_by_side
from chalicelib.values import decode

log = logging.getLogger("chatlake.etl")

DEFAULT_RETRY_WINDOW_DAYS = 7  # WhatsApp retries a delivery for up to 7 days (setting RETRY_WINDOW_DAYS)
PART_NAME = layout.PART_NAME
COMMIT_FORMAT = 1
PARSERS: dict[str, Callable[[dict[str, Any], str], Parsed]] = {
    "telegram": telegram.parse,
    "whatsapp": whatsapp.parse,
    eum.SOURCE: eum.parse,  # the same WhatsApp rows, from AWS End User Messaging Social's SNS events
}
# Sort keys, so that re-running a day gives byte-identical files.
SORT_KEYS = {
    "messages": ["sent_at", "source", "message_id", "edited_at", "message_type"],
    "statuses": ["status_at", "message_id", "status"],
    "rejects": ["source", "raw_key", "reason"],
    "media": ["source", "media_id"],
}

Progress = Callable[[int, int], None]  # (deliveries done, deliveries in all)


def version_key(m: Message) -> tuple:
    """What makes a row of `messages` one version of one message. The type is part of it: a WhatsApp edit
    and a revoke of one message in the same second are two versions, not a retry."""
    return m.source, m.message_id, m.edited_at, m.message_type


def status_key(s: Status) -> tuple:
    return s.message_id, s.status


@dataclass
class DayResult:
    """What one day's ETL did, for the CLI, the schedule's log and the tests."""

    day: date
    deliveries: int = 0
    messages: int = 0
    statuses: int = 0
    rejects: int = 0
    duplicates: int = 0  # rows already given by an earlier delivery (a retry) of the day or of the window
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.day}: {self.deliveries} deliveries -> {self.messages} messages, {self.statuses} statuses, "
                f"{self.rejects} rejects ({self.duplicates} duplicates dropped) in {self.seconds:.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), date) else v) for f in fields(self)}


RESULT_COLUMNS = ["day", "deliveries", "messages", "statuses", "rejects", "duplicates", "seconds"]


def yesterday(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).date() - timedelta(days=1)


def parse_delivery(source: str, raw_key: str, body: bytes) -> Parsed:
    """One raw delivery → rows, or problems; never raises. This is the one catch-all for parser crashes (the
    parsers carry none): a parser bug becomes the delivery's one reject, not a lost day."""
    try:
        value = decode(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        return Parsed(problems=[f"the raw delivery is not readable JSON ({e}){_unquarantined(source)}"])
    if not isinstance(value, dict):
        return Parsed(problems=[f"the raw delivery is JSON but not an object (a {type(value).__name__})"
                                f"{_unquarantined(source)}"])
    try:
        return PARSERS[source](value, raw_key)
    except Exception as e:  # the day must complete; the reason goes to rejects
        log.exception("parser failed on %s", raw_key)
        return Parsed(problems=[f"chatlake's {source} parser failed ({type(e).__name__}: {e}); the raw delivery is "
                                "kept: report this raw_key so the parser can be fixed, then re-run the day"])


def _unquarantined(source: str) -> str:
    """The webhooks quarantine unreadable bodies; SNS events are stored as received, so there it is no surprise."""
    return "; it should have been quarantined" if source in layout.SOURCES else ""


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


@dataclass(frozen=True)
class RawListing:
    """A day's raw deliveries as (source, key), in key order: among copies of one message received the same day,
    the row keeps the first raw key in that order, so re-runs pick the same one."""

    day: date
    objects: tuple[tuple[str, str], ...]

    @cached_property
    def digest(self) -> str:
        """Names the exact set of raw deliveries ("" for none): keys are content addresses, so equal digests
        mean equal bytes."""
        if not self.objects:
            return ""
        return hashlib.sha256("\n".join(k for _, k in self.objects).encode()).hexdigest()


def list_raw(storage: Storage, day: date, cache: dict[date, RawListing] | None = None, *,
             ranges: int = 1) -> RawListing:
    """The day's raw listing (memoised in `cache` for one command: past days' raw data does not change under it).
    `ranges` > 1 lists each source as that many ranges of names side by side (a day known to be big: on S3 its
    pages then come `ranges` at a time instead of one after another)."""
    return list_raws(storage, [day], cache, ranges=ranges)[0]


#: Raw names are sha256 hex digests: ranges of names are cut on their first four hex digits.
NAME_SPACE = 16 ** 4


def name_range(index: int, parts: int) -> tuple[str, str]:
    """Range `index` of `parts` equal ranges of raw names, as bounds for `Storage.keys` (after, before; "" for
    none) relative to a raw folder: names whose first four hex digits v have v * parts // NAME_SPACE == index."""
    if not 0 <= index < parts <= NAME_SPACE:
        raise ValueError(f"range {index} of {parts} does not exist")
    low, high = -(-index * NAME_SPACE // parts), -(-(index + 1) * NAME_SPACE // parts)
    # every name is 64 hex digits + ".json": names >= "4000" are exactly the names after "4000"
    return (f"{low:04x}" if index else "", f"{high:04x}" if index + 1 < parts else "")


def list_raws(storage: Storage, days: list[date], cache: dict[date, RawListing] | None = None, *,
              ranges: int = 1) -> list[RawListing]:
    """Several days' raw listings, every (day, source) prefix listed side by side: on S3 a listing is pages one
    after another, but listings of different prefixes (or ranges of one, `ranges`) wait together."""
    cache = {} if cache is None else cache
    wanted = [d for d in dict.fromkeys(days) if d not in cache]
    found = _list_ranges(storage, wanted, [name_range(i, ranges) for i in range(ranges)] if ranges > 1 else [])
    for d in wanted:
        cache[d] = RawListing(d, tuple((source, key) for source in layout.RAW_SOURCES for key in found[d, source]))
    return [cache[d] for d in days]


def list_raw_range(storage: Storage, day: date, index: int, parts: int) -> RawListing:
    """Only range `index` of `parts` of the day's raw names (a fanned-out worker's share), each source's range
    listed side by side; not memoised (it is not the day's listing)."""
    found = _list_ranges(storage, [day], [name_range(index, parts)])
    return RawListing(day, tuple((source, key) for source in layout.RAW_SOURCES for key in found[day, source]))


def _list_ranges(storage: Storage, days: list[date], bounds: list[tuple[str, str]]) -> dict[tuple, list[str]]:
    """(day, source) → its raw keys in key order: within `bounds`' ranges, concatenated (none: the whole prefix)."""
    parts = [(d, source, b) for d in days for source in layout.RAW_SOURCES for b in (bounds or [None])]

    def keys(part: tuple[date, str, tuple[str, str] | None]) -> list[str]:
        d, source, b = part
        prefix = layout.raw_prefix(source, d)
        if b is None:
            listed = storage.keys(prefix)
        else:
            listed = storage.keys(prefix, after=prefix + b[0] if b[0] else "", before=prefix + b[1] if b[1] else "")
        return [k for k in listed if k.endswith(".json")]

    found: dict[tuple, list[str]] = {}
    for (d, source, _), listed in zip(parts, side_by_side(storage, keys, parts), strict=True):
        found.setdefault((d, source), []).extend(listed)
    return found


def pii_mark(pii_salt: str | None) -> str:
    """Which identifier space rows are in, without revealing the salt: versions compare only within one."""
    if not pii_salt:
        return "keep"
    return "hash:" + hashlib.sha256(b"chatlake-pii-mark\x00" + pii_salt.encode()).hexdigest()[:16]


@dataclass
class DayRows:
    """A day's raw deliveries parsed: each message version and status once, identifiers hashed if asked."""

    listing: RawListing
    messages: dict[tuple, Message] = field(default_factory=dict)
    statuses: dict[tuple, Status] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    duplicates: int = 0
    mentions: dict[str, str] = field(default_factory=dict)  # raw key -> the ids it can mention (`forget`'s index)


#: A process of its own pays off from this many deliveries on (fork, encoding and merging cost ~2 µs per delivery
#: against ~12 µs of reading and parsing one; below it a run is too short to matter).
MIN_DELIVERIES_PER_PROCESS = 10_000


def parse_processes(storage: Storage, deliveries: int, at_most: int | None = None) -> int:
    """How many processes read and parse a day: the usable cores (`multicore.usable_cores`) for a large day on a
    local disk, else 1. On S3 the reads wait on the network and threads overlap them (`read_bodies`); those
    threads rule out a fork."""
    if storage.parallel_reads > 1 or deliveries < 2 * MIN_DELIVERIES_PER_PROCESS or at_most == 1:
        return 1
    count = min(multicore.usable_cores(), deliveries // MIN_DELIVERIES_PER_PROCESS)
    return max(1, count if at_most is None else min(count, at_most))


def read_day(storage: Storage, listing: RawListing, pii_salt: str | None,
             progress: Progress | None = None, deny: erasure.DenyList | None = None, *,
             processes: int | None = None) -> DayRows:
    """Parse every raw delivery of the day; keep the first copy (in key order) of each version and status.
    Rows of forgotten people (the erasure deny list) are dropped first, before any duplicate check or version
    file sees them: a re-delivered old body gives nothing, and no later day counts them.

    Up to `processes` processes (`parse_processes` decides) work on contiguous slices of the key order, merged
    in that order: the same rows, in the same order, as one process gives."""
    deny = deny if deny else None
    objects = listing.objects
    count = parse_processes(storage, len(objects), processes)
    hash_run = mentions.hasher(pii_salt)
    if count <= 1:
        rows = _parse_objects(storage, listing, objects, deny, hash_run, progress)
    else:
        parts = multicore.in_slices(objects, count,
                                    lambda part, index: _parse_objects(storage, listing, part, deny, hash_run,
                                                                       None if index else progress, len(objects)),
                                    _encode_rows, lambda data: _decode_rows(listing, data), meanwhile=_import_arrow)
        rows = _merge_rows(listing, parts)
        if progress:
            progress(len(objects), len(objects))
    if pii_salt:
        # Hash before any comparison with other days: their versions are stored hashed. Hashing is injective
        # in practice, so the day's own duplicates found above stay the same.
        pii.hash_rows(rows.messages.values(), rows.statuses.values(), pii_salt)
        rows.messages = {version_key(m): m for m in rows.messages.values()}
    return rows


def _import_arrow() -> None:
    """pyarrow's import (~0.1 s, the Parquet files need it next), while this process waits for a worker's rows."""
    import pyarrow.parquet  # noqa: F401


def _parse_objects(storage: Storage, listing: RawListing, objects: Sequence[tuple[str, str]],
                   deny: erasure.DenyList | None, hash_run: mentions.Hasher | None, progress: Progress | None,
                   total: int | None = None) -> DayRows:
    """The rows of some of the day's deliveries (in their order), each version and status once, and what each
    delivery can mention (`forget`'s index)."""
    rows = DayRows(listing)
    drops_run = deny.drops_run if deny is not None else None
    messages, statuses = rows.messages, rows.statuses
    total = total or len(objects)
    bodies = read_bodies(storage, [key for _, key in objects], storage.parallel_reads)
    for done, ((source, key), (_, body)) in enumerate(zip(objects, bodies, strict=True), 1):
        rows.mentions[key] = mentions.entry(body, hash_run, drops_run)
        parsed = parse_delivery(source, key, body)
        if deny is not None:
            parsed.messages = [m for m in parsed.messages if not deny.drops_message(m)]
            parsed.statuses = [s for s in parsed.statuses if not deny.drops_status(s)]
        for m in parsed.messages:
            k = (m.source, m.message_id, m.edited_at, m.message_type)  # version_key, inlined: once per row
            if k in messages:
                rows.duplicates += 1
            else:
                messages[k] = m
        for s in parsed.statuses:
            k = (s.message_id, s.status)  # status_key
            if k in statuses:
                rows.duplicates += 1
            else:
                statuses[k] = s
        if parsed.problems:
            rows.rejects.extend(Reject(source, key, reason) for reason in parsed.problems)
        if progress and (done % 1000 == 0 or done == total):
            progress(done, total)
    return rows


_MESSAGE_FIELDS = attrgetter(*(f.name for f in fields(Message)))
_STATUS_FIELDS = attrgetter(*(f.name for f in fields(Status)))


def _encode_rows(rows: DayRows) -> bytes:
    """A worker process's rows as bytes for the pipe: tuples of plain values in `marshal`'s version 2, which
    shares no references (a third of the time of later versions or of pickling row objects; the keys are
    recomputed on the other side)."""
    return marshal.dumps((list(map(_MESSAGE_FIELDS, rows.messages.values())),
                          list(map(_STATUS_FIELDS, rows.statuses.values())),
                          [(r.source, r.raw_key, r.reason) for r in rows.rejects], rows.duplicates, rows.mentions), 2)


def _decode_rows(listing: RawListing, data: bytes) -> DayRows:
    messages, statuses, rejects, duplicates, mentioned = marshal.loads(data)
    rows = DayRows(listing, duplicates=duplicates, mentions=mentioned)
    rows.messages = {version_key(m): m for m in (Message(*values) for values in messages)}
    rows.statuses = {status_key(s): s for s in (Status(*values) for values in statuses)}
    rows.rejects = [Reject(*values) for values in rejects]
    return rows


def _merge_rows(listing: RawListing, parts: list[DayRows]) -> DayRows:
    """Consecutive slices' rows as one pass over them all: the first copy of a version or status wins."""
    rows = DayRows(listing)
    messages, statuses = rows.messages, rows.statuses
    for part in parts:
        rows.duplicates += part.duplicates
        for k, m in part.messages.items():
            if k in messages:
                rows.duplicates += 1
            else:
                messages[k] = m
        for k, s in part.statuses.items():
            if k in statuses:
                rows.duplicates += 1
            else:
                statuses[k] = s
        rows.rejects.extend(part.rejects)
        rows.mentions.update(part.mentions)
    return rows


# --- version files: what a day's raw data gives, for the days after it ------------------------------------------

_VERSION_COLUMNS = ("table", "source", "id", "at", "kind")


def versions_file(rows: DayRows, mark: str) -> bytes:
    """The day's message versions and statuses as a small Parquet file, labelled with the raw listing and
    identifier space they come from."""
    import pyarrow as pa

    # the key tuples transposed into columns in C (zip), not one comprehension per column
    source, mid, at, mkind = zip(*rows.messages, strict=True) if rows.messages else ((), (), (), ())
    sid, skind = zip(*rows.statuses, strict=True) if rows.statuses else ((), ())
    data = pa.table({
        "table": pa.array(["messages"] * len(mid) + ["statuses"] * len(sid), pa.string()),
        "source": pa.array(source + (None,) * len(sid), pa.string()),
        "id": pa.array(mid + sid, pa.string()),
        "at": pa.array(at + (None,) * len(sid), pa.int64()),
        "kind": pa.array(mkind + skind, pa.string()),
    }).replace_schema_metadata({"raw_digest": rows.listing.digest, "pii": mark, "format": str(COMMIT_FORMAT)})
    return parquet.record_bytes(data)  # damage is found, not believed


def read_versions(storage: Storage, listing: RawListing, mark: str, *,
                  any_listing: bool = False) -> tuple[set, set] | None:
    """The day's stored versions, or None when missing, unreadable, or not of this raw listing (unless
    `any_listing`) and identifier space (then the caller rebuilds them from raw)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(io.BytesIO(storage.get(layout.versions_key(listing.day))), page_checksum_verification=True)
        meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
        # A day whose raw data is gone (retention) keeps the versions it had: they are all that is left of it.
        digest = meta.get("raw_digest") if any_listing or not listing.objects else listing.digest
        if (meta.get("raw_digest"), meta.get("pii"), meta.get("format")) != (digest, mark, str(COMMIT_FORMAT)):
            return None
        columns = [data.column(c).to_pylist() for c in _VERSION_COLUMNS]
    except (NotFound, OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, pa.ArrowException):
        return None
    except StorageError as e:
        log.warning("cannot read the versions of %s (%s): rebuilding them from raw", listing.day, e)
        return None
    messages: set[tuple] = set()
    statuses: set[tuple] = set()
    for table, source, id_, at, kind in zip(*columns, strict=True):
        if table == "messages":
            messages.add((source, id_, at, kind))
        else:
            statuses.add((id_, kind))
    return messages, statuses


def store_versions(storage: Storage, rows: DayRows, mark: str, warnings: list[str]) -> None:
    """Best effort: the file only saves later days a re-read of this day's raw data."""
    try:
        storage.put(layout.versions_key(rows.listing.day), versions_file(rows, mark))
    except StorageError as e:
        warnings.append(f"could not store {layout.versions_key(rows.listing.day)} ({e}); later days will re-read "
                        f"{rows.listing.day}'s raw data instead")


def window_versions(storage: Storage, day: date, window: int, pii_salt: str | None, warnings: list[str],
                    listings: dict[date, RawListing], deny: erasure.DenyList | None = None, *,
                    provisional: bool = False) -> tuple[set, set, dict[str, str]]:
    """Versions and statuses that the window's earlier days' raw data gives, and the raw digests they came from.

    `provisional` (intraday runs): a stored versions file is taken without listing its day's raw data to check it
    (a listing per earlier day and run would cost more than the run); only a missing or unreadable one is rebuilt.
    A delivery that reached an earlier day after its last full run may then leave a row in today's intraday
    files that the nightly full run drops (that earlier day is behind meanwhile, and the catch-up reruns both)."""
    mark = pii_mark(pii_salt)
    messages: set[tuple] = set()
    statuses: set[tuple] = set()
    depends: dict[str, str] = {}
    days = [day - timedelta(days=back) for back in range(window, 0, -1)]
    # The independent requests side by side (on S3 each waits a round trip): the stored versions files of an
    # intraday run, then the listings still needed, then the versions files to check against them.
    stored: list[tuple[set, set] | None] = [None] * len(days)
    if provisional:
        stored = side_by_side(storage, lambda d: read_versions(storage, RawListing(d, ()), mark, any_listing=True),
                              days)
    need = [d for d, found in zip(days, stored, strict=True) if found is None]
    listed = dict(zip(need, list_raws(storage, need, listings), strict=True))
    # An intraday run's lenient read above found nothing usable: a strict one would not either (no second GET).
    checked = dict.fromkeys(need) if provisional else dict(zip(
        need, side_by_side(storage, lambda d: read_versions(storage, listed[d], mark), need), strict=True))
    for d, found in zip(days, stored, strict=True):
        if found is None:
            listing = listed[d]
            depends[d.isoformat()] = listing.digest
            found = checked[d]
            if found is None and not listing.objects:  # no raw: nothing, or what an expired day left
                continue
            if found is None:  # never run, raw changed since, or damaged: the raw layer is the truth
                log.info("reading %s's raw data for the duplicate check of %s", listing.day, day)
                rows = read_day(storage, listing, pii_salt, deny=deny)
                store_versions(storage, rows, mark, warnings)
                found = set(rows.messages), set(rows.statuses)
        messages |= found[0]
        statuses |= found[1]
    return messages, statuses, depends


# --- the day's output, committed as a whole -------------------------------------------------------------------


def to_parquet(table: str, rows: list[Any], metadata: dict[str, str] | None = None, *, sort: bool = True) -> bytes:
    """Rows → one zstd Parquet file with the table's fixed schema, sorted for stable output (unsorted: in the
    given order, for a fanned-out run's shares, whose order decides which copy of a row wins; `metadata` goes in
    its schema, for a writer's own bookkeeping)."""
    import pyarrow as pa

    schema = arrow_schema(table)
    names = list(COLUMNS[table])
    columns = zip(*map(attrgetter(*names), rows), strict=True) if rows else ([] for _ in names)  # tuples per column
    arrays = [pa.array(values, type=schema.field(name).type) for name, values in zip(names, columns, strict=True)]
    data = pa.Table.from_arrays(arrays, schema=schema)
    if sort:
        data = sorted_table(table, data)
    if metadata:
        data = data.replace_schema_metadata(metadata)
    return parquet.table_bytes(data)


def sorted_table(table: str, data: Any) -> Any:
    """An Arrow table of `table`'s rows in the lake's stable order (its SORT_KEYS)."""
    return data.sort_by([(k, "ascending") for k in SORT_KEYS[table]]) if data.num_rows > 1 else data


def read_commit(storage: Storage, day: date) -> dict[str, Any] | None:
    """The day's commit record, or None (never run, a run under way or killed, or unreadable)."""
    try:
        record = json.loads(storage.get(layout.commit_key(day)))
    except (NotFound, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("format") == COMMIT_FORMAT else None


def commit_day(storage: Storage, day: date, files: dict[str, bytes], record: dict[str, Any],
               warnings: list[str]) -> None:
    """Replace the day's tables as a whole: on a failure put back what was there; if even that fails (or the run
    is killed) the day has no commit record and shows as behind until a run completes."""
    def current(key: str) -> bytes | None:
        try:
            return storage.get(key)
        except NotFound:
            return None

    # what is there now, read side by side (one round trip on S3)
    *before, old_record = side_by_side(storage, current, [*(layout.part_key(t, day) for t in files),
                                                          layout.commit_key(day)])
    previous: dict[str, bytes | None] = dict(zip(files, before, strict=True))
    storage.delete(layout.commit_key(day))
    written: list[str] = []
    try:
        for table, data in files.items():
            storage.put(layout.part_key(table, day), data)
            written.append(table)
        storage.put(layout.commit_key(day), json.dumps(record, indent=1, sort_keys=True).encode())
    except Exception:
        _roll_back(storage, day, previous, written, old_record)
        raise
    # files of older versions, of intraday runs or of a crash: after the commit, never before (side by side)
    listed = side_by_side(storage, lambda t: list(storage.keys(layout.enriched_prefix(t, day))), list(files))
    stale = [key for table, keys in zip(files, listed, strict=True) for key in keys
             if key != layout.part_key(table, day) and not layout.is_import_file(key)]

    def remove(key: str) -> None:
        try:
            storage.delete(key)
        except StorageError as e:
            warnings.append(f"could not remove {key} ({e}): queries may count its rows twice; re-run {day}")

    side_by_side(storage, remove, stale)


def _roll_back(storage: Storage, day: date, previous: dict[str, bytes | None], written: list[str],
               old_record: bytes | None) -> None:
    try:
        for table in written:
            data = previous[table]
            if data is None:
                storage.delete(layout.part_key(table, day))
            else:
                storage.put(layout.part_key(table, day), data)
        if old_record is not None:
            storage.put(layout.commit_key(day), old_record)
    except StorageError as e:
        log.error("could not restore %s's previous output (%s): the day shows as behind until it is re-run", day, e)


def run_day(storage: Storage, day: date, pii_salt: str | None = None, progress: Progress | None = None, *,
            window: int = DEFAULT_RETRY_WINDOW_DAYS, listings: dict[date, RawListing] | None = None,
            deny: erasure.DenyList | None = None, processes: int | None = None) -> DayResult:
    """The ETL for one day (see the module's docstring); `processes`: at most that many parse (`read_day`)."""
    # Rows are many small objects that all live until the day is written: the cyclic garbage collector
    # would rescan them again and again for nothing (there are no reference cycles to find here).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deny = erasure.load(storage, pii_salt) if deny is None else deny
        return _run_day(storage, day, pii_salt, progress, window, {} if listings is None else listings, deny,
                        processes)
    finally:
        if gc_was_enabled:
            gc.enable()


def raw_expired(record: dict[str, Any] | None, listing: RawListing) -> bool:
    """The day was built from raw deliveries that are all gone now: RAW_RETENTION_DAYS (`prune`, an S3 lifecycle
    rule) or an erasure removed them. Its tables are all that is left; they are kept, never rebuilt into nothing."""
    return record is not None and int(record.get("deliveries") or 0) > 0 and not listing.objects


def _run_day(storage: Storage, day: date, pii_salt: str | None, progress: Progress | None, window: int,
             listings: dict[date, RawListing], deny: erasure.DenyList, processes: int | None = None) -> DayResult:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    marks = None if day in listings else runlog.marks_now(storage, day)  # before the listing: it covers them
    listing = list_raw(storage, day, listings)
    if not listing.objects and raw_expired(read_commit(storage, day), listing):  # a read only when raw is empty
        result = DayResult(day)
        result.warnings.append(f"{day}'s raw deliveries are gone (retention): its tables are kept as they are, "
                               "not rebuilt")
        for w in result.warnings:
            log.warning("%s", w)
        return result
    rows = read_day(storage, listing, pii_salt, progress, deny, processes=processes)
    return finish_day(storage, rows, pii_salt, window, listings, started, started_at, deny, marks)


def finish_day(storage: Storage, rows: DayRows, pii_salt: str | None, window: int,
               listings: dict[date, RawListing], started: float, started_at: datetime,
               deny: erasure.DenyList | None = None, marks: dict[str, list[int]] | None = None, *,
               write: Callable[[str, list[Any]], bytes] = to_parquet) -> DayResult:
    """A full run from the day's parsed rows on (a single run, or the merge of a fanned-out one): the cross-day
    check, the commit, and the run's manifest (with the arrivals `marks` taken before the listing, if any).
    `write` makes a table's file from the rows kept (the merge's rows are positions in its Arrow tables, written
    by its own `write`)."""
    listing = rows.listing
    day = listing.day
    result = DayResult(day)
    result.deliveries = len(listing.objects)
    deny = erasure.load(storage, pii_salt) if deny is None else deny
    if deny.unresolved:
        result.warnings.append(f"{deny.unresolved} erasure deny-list entries need the PII_SALT they were written "
                               "with and are not applied")
    mark = pii_mark(pii_salt)
    store_versions(storage, rows, mark, result.warnings)
    mentions.store(storage, day, listing.digest, rows.mentions, pii_salt, result.warnings)
    seen_messages, seen_statuses, depends = window_versions(storage, day, window, pii_salt, result.warnings,
                                                            listings, deny)
    messages = [m for k, m in rows.messages.items() if k not in seen_messages]
    statuses = [s for k, s in rows.statuses.items() if k not in seen_statuses]
    result.duplicates = rows.duplicates + len(rows.messages) - len(messages) + len(rows.statuses) - len(statuses)
    files = {"messages": write("messages", messages), "statuses": write("statuses", statuses),
             "rejects": write("rejects", rows.rejects)}
    counts = {"messages": len(messages), "statuses": len(statuses), "rejects": len(rows.rejects)}
    record = {
        "format": COMMIT_FORMAT, "day": day.isoformat(), "raw": listing.digest, "deliveries": len(listing.objects),
        "window": window, "pii": mark, "depends": depends, "deny": deny.digest,
        "tables": {t: {"key": layout.part_key(t, day), "size": len(data)} for t, data in files.items()},
        "rows": counts, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    commit_day(storage, day, files, record, result.warnings)
    result.messages, result.statuses, result.rejects = counts["messages"], counts["statuses"], counts["rejects"]
    result.seconds = time.perf_counter() - started
    record_run(storage, listing, counts, started_at, result, marks)
    for w in result.warnings:
        log.warning("%s", w)
    log.info("%s", result.summary())
    return result


def record_run(storage: Storage, listing: RawListing, counts: dict[str, int], started_at: datetime,
               result: DayResult, marks: dict[str, list[int]] | None = None) -> None:
    """The full run's manifest (after its commit): it consumed the whole listing, so a later intraday run of
    the day reads only what arrived since. Best effort: without it, that run re-reads the day and adds nothing
    twice (it checks the day's visible rows)."""
    manifest = runlog.Manifest(
        run=runlog.new_run_id("full", started_at), kind="full", day=listing.day,
        started_at=started_at.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"), seconds=result.seconds,
        consumed=runlog.consumed_by(list(listing.objects)), rows=counts,
        files={t: layout.part_key(t, listing.day) for t in counts}, arrivals=marks)
    try:
        runlog.write(storage, manifest)
    except StorageError as e:
        result.warnings.append(f"could not record the run in {layout.runs_prefix(listing.day)} ({e}); the next "
                               "intraday run of the day will re-read its raw data")


def run_days(storage: Storage, days: Iterable[date], pii_salt: str | None = None,
             on_day: Callable[[DayResult], None] | None = None, *,
             window: int = DEFAULT_RETRY_WINDOW_DAYS) -> list[DayResult]:
    """The ETL for several days, oldest first (so each day's window finds the days before it ready)."""
    results = []
    listings: dict[date, RawListing] = {}
    deny = erasure.load(storage, pii_salt)
    for d in sorted(days):
        results.append(run_day(storage, d, pii_salt, window=window, listings=listings, deny=deny))
        if on_day:
            on_day(results[-1])
    return results


# --- behind, and catching up -----------------------------------------------------------------------------------


DEFAULT_INTERVAL_MINUTES = 15  # intraday runs (setting ETL_INTERVAL_MINUTES)


def behind_reason(storage: Storage, day: date, pii_salt: str | None = None, *,
                  window: int = DEFAULT_RETRY_WINDOW_DAYS,
                  listings: dict[date, RawListing] | None = None, now: datetime | None = None,
                  interval_minutes: int = DEFAULT_INTERVAL_MINUTES) -> str | None:
    """Why the day's output is not what a run now would write (None: it is). Listings and one small read only.

    Today (UTC, by `now`) is judged by the intraday rule instead: behind when a raw delivery older than two
    intervals is not in a row yet (`intraday.today_reason`). A past day whose rows come from intraday runs is
    not finalised, hence behind: the catch-up's full run finalises it."""
    listings = {} if listings is None else listings
    if day == (now or datetime.now(UTC)).date():
        from chalicelib import intraday

        return intraday.today_reason(storage, day, now, interval_minutes)
    listing = list_raw(storage, day, listings)
    record = read_commit(storage, day)
    outputs = {t: [o for o in storage.list(layout.enriched_prefix(t, day)) if not layout.is_import_file(o.key)]
               for t in layout.TABLES}
    intraday_files = sum(layout.is_intraday_file(o.key) for t in layout.TABLES for o in outputs[t])
    if intraday_files:
        return (f"{intraday_files} file(s) of intraday runs: not finalised since (the catch-up's full run "
                "replaces them)")
    if record is None:
        if listing.objects:
            return f"{len(listing.objects)} raw deliveries and no completed ETL run"
        return "output without a completed ETL run" if any(outputs.values()) else None
    expired = raw_expired(record, listing)
    if record.get("raw") != listing.digest and not expired:
        change = len(listing.objects) - int(record.get("deliveries") or 0)
        return (f"{change} raw deliveries arrived after its last run" if change > 0
                else "its raw deliveries changed since its last run")
    if (record.get("window") != window or record.get("pii") != pii_mark(pii_salt)) and not expired:
        return "RETRY_WINDOW_DAYS or PII_MODE/PII_SALT changed since its last run"
    if not expired and record.get("deny", "") != erasure.deny_digest(storage):
        return "the erasure deny list changed since its last run (an unfinished chatlake forget: re-run it)"
    depends = record.get("depends") or {}
    for back in range(window, 0, -1):
        earlier = list_raw(storage, day - timedelta(days=back), listings)
        if expired or not earlier.objects:  # raw gone by retention: its stored versions stand in for it
            continue
        if depends.get(earlier.day.isoformat(), "") != earlier.digest:
            return f"the raw deliveries of {earlier.day} (in its {window}-day retry window) changed since its last run"
    for table in layout.TABLES:
        want = (record.get("tables") or {}).get(table) or {}
        if [(o.key, o.size) for o in outputs[table]] != [(want.get("key"), want.get("size"))]:
            return f"its {table} files are not those of its last run"
    return None


def catch_up(storage: Storage, today: date, pii_salt: str | None = None, *, days: int | None = None,
             window: int = DEFAULT_RETRY_WINDOW_DAYS,
             on_day: Callable[[DayResult], None] | None = None,
             fan_out: Callable[[RawListing], DayResult | None] | None = None) -> list[DayResult]:
    """Run, oldest first, each of the `days` days before `today` (default: the retry window) that is behind:
    the schedule's run in AWS and in `make run`, and the rule `status` applies. `fan_out` may take a day too big
    for this invocation instead (`fanout.fan_out_over`: its workers run and commit it)."""
    listings: dict[date, RawListing] = {}
    span = window if days is None else days
    behind = [d for d in (today - timedelta(days=back) for back in range(max(span, 1), 0, -1))
              if behind_reason(storage, d, pii_salt, window=window, listings=listings)]
    results = []
    deny = erasure.load(storage, pii_salt) if behind else erasure.DenyList()
    for d in behind:
        dispatched = fan_out(list_raw(storage, d, listings)) if fan_out else None
        results.append(dispatched or run_day(storage, d, pii_salt, window=window, listings=listings, deny=deny))
        if on_day:
            on_day(results[-1])
    return results
