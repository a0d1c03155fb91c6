"""Intraday runs: bring a day that is not finalised (today, by default) up to date, incrementally.

A run of day D finds D's raw deliveries that no run of the day has consumed (the union of the day's manifests,
`runlog`: a full run consumes its whole listing) and reads only those: on S3 by listing the day, on a folder lake
from the raw folders' arrivals journals (`new_objects`). It parses them, drops each message version
and status that an earlier day of the retry window gives (`etl.window_versions`, as a full run does) or that is
already in one of the day's visible files (`part-0.parquet` of a full run, and earlier `intraday-*.parquet`
files: their key columns are read), and writes each table's new rows as one new file,
`enriched/<table>/dt=D/intraday-<run>.parquet`, in one write (a query sees all of it or none). The manifest
comes last. A run killed in between wrote files but no manifest: the next run reads those deliveries again, finds
their rows (and rejects) in the visible files and adds none of them twice; for the tables the killed run had not
written yet, it adds the rows then.

The day's next full run (`etl.run_day`, the nightly catch-up) is the finalising one: it writes `part-0.parquet`
per table and then removes the intraday files, so the day ends as one file per table, identical to a run that
never saw intraday runs. Until then, a past day with intraday files is "behind" (`etl.behind_reason`).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chalicelib import erasure, etl, layout, parquet, runlog
from chalicelib.storage import ObjectInfo, Storage, side_by_side

log = logging.getLogger("chatlake.intraday")

# What `visible_files` reads of each table, and the id column `visible_keys` filters on.
_KEY_COLUMNS = {"messages": ["source", "message_id", "edited_at", "message_type"],
                "statuses": ["message_id", "status"], "rejects": ["raw_key"]}
_ID_COLUMN = {"messages": "message_id", "statuses": "message_id", "rejects": "raw_key"}
RESULT_COLUMNS = ["day", "deliveries", "messages", "statuses", "rejects", "duplicates", "lag_seconds", "seconds"]


@dataclass
class RefreshResult:
    """What one intraday run added."""

    day: date
    run: str = ""
    deliveries: int = 0  # raw deliveries read for the first time
    messages: int = 0
    statuses: int = 0
    rejects: int = 0
    duplicates: int = 0  # versions/statuses an earlier day, an earlier run or another new delivery already gave
    lag_seconds: float = 0.0  # how long the oldest delivery this run added waited for it
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.deliveries:
            return f"{self.day}: up to date (no new raw deliveries)"
        return (f"{self.day}: {self.deliveries} new deliveries -> +{self.messages} messages, +{self.statuses} "
                f"statuses, +{self.rejects} rejects ({self.duplicates} duplicates dropped; waited up to "
                f"{self.lag_seconds:.0f} s) in {self.seconds:.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), date) else v)
                for f in fields(self) if f.name != "warnings"}


def raw_objects(storage: Storage, day: date) -> list[tuple[str, ObjectInfo]]:
    """The day's raw deliveries with their receive times (an S3 listing carries them; a folder stats each); the
    sources are listed side by side."""
    listed = side_by_side(storage, lambda source: [o for o in storage.list(layout.raw_prefix(source, day))
                                                   if o.key.endswith(".json")], layout.RAW_SOURCES)
    return [(source, o) for source, objects in zip(layout.RAW_SOURCES, listed, strict=True) for o in objects]


def new_objects(storage: Storage, day: date, manifests: Callable[[], list[runlog.Manifest]], *,
                journal: bool = True) -> tuple[list[tuple[str, ObjectInfo]], dict[str, list[int]] | None]:
    """The day's raw deliveries no run consumed, with their receive times, and the arrivals marks to record
    (`runlog`). `manifests` is asked when needed (the caller reads them meanwhile). `journal=False` lists the
    day even where a journal could answer (a refresh by hand also finds files copied in by other means).

    A folder lake answers from its arrivals journals, from where the latest run left them: a few lines
    instead of the day's 100k names (listing them is most of a run that finds 1% new). When a journal cannot
    answer (`FolderStorage.arrivals`), or no run left marks yet, the day is listed: the marks are taken first, so
    the next run can start from them. S3 has no journal: its listing (which carries the times) is diffed."""
    arrivals = getattr(storage, "arrivals", None)
    if arrivals is None:
        listed = raw_objects(storage, day)
        seen = runlog.consumed_names(manifests())
        return [(s, o) for s, o in listed if runlog.raw_name(o.key) not in seen.get(s, ())], None
    runs = manifests()
    marks = (runlog.arrival_marks(runs) if journal else None) or {}
    tails = {source: arrivals(layout.raw_prefix(source, day), marks[source])
             for source in layout.RAW_SOURCES if source in marks}
    if len(tails) == len(layout.RAW_SOURCES) and None not in tails.values():
        new = []
        for source, (names, _) in tails.items():  # a retry noted again, or what a full run listed after its mark
            names = {name[:-5] for name in names if name.endswith(".json")}
            names -= runlog.consumed_among(runs, source, names)
            new += [(source, f"{layout.raw_prefix(source, day)}{name}.json") for name in sorted(names)]
        ends = {source: list(end) for source, (_, end) in tails.items()}
    else:
        seen = runlog.consumed_names(runs)
        ends = runlog.marks_now(storage, day)
        new = []
        for source in layout.RAW_SOURCES:  # 100k names a day: a slice, not a call, per name
            cut, names = len(layout.raw_prefix(source, day)), seen.get(source, ())
            new += [(source, key) for key in storage.keys(layout.raw_prefix(source, day))
                    if key.endswith(".json") and key[cut:-5] not in names]
    times = storage.mtimes([k for _, k in new])
    return [(source, ObjectInfo(key, 0, times[key])) for source, key in new if key in times], ends


def visible_files(storage: Storage, day: date) -> list[tuple[str, Any]]:
    """The key columns of the day's ETL files that a query sees now, per table (imports excluded: a full run does
    not compare against them either): the tables' folders listed side by side, then their files read side by side
    (on S3, two round trips)."""
    import pyarrow.parquet as pq

    def files(table: str) -> list[tuple[str, str]]:
        return [(table, k) for k in storage.keys(layout.enriched_prefix(table, day))
                if k.endswith(".parquet") and not layout.is_import_file(k)]

    def read(item: tuple[str, str]) -> tuple[str, Any]:  # one small file per run, and the full run's
        table, key = item
        return table, pq.read_table(io.BytesIO(storage.get(key)), columns=_KEY_COLUMNS[table])

    return side_by_side(storage, read, [f for listed in side_by_side(storage, files, layout.TABLES) for f in listed])


def visible_keys(found: list[tuple[str, Any]], rows: etl.DayRows) -> tuple[set[tuple], set[tuple], set[str]]:
    """Which of `rows`' version keys, status keys and rejected raw keys are in the visible files' key columns
    (`visible_files`). Only the rows whose id is among the new ones become Python tuples (a day holds 1M, a run
    1%)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = {"messages": {k[1] for k in rows.messages}, "statuses": {k[0] for k in rows.statuses},
              "rejects": {r.raw_key for r in rows.rejects}}
    value_sets = {t: pa.array(sorted(ids), pa.string()) for t, ids in wanted.items() if ids}
    messages: set[tuple] = set()
    statuses: set[tuple] = set()
    rejected: set[str] = set()
    for table, t in found:
        if table not in value_sets:
            continue
        t = t.filter(pc.is_in(t.column(_ID_COLUMN[table]), value_set=value_sets[table]))
        if table == "messages":
            edited = parquet.values(t, "edited_at")
            messages.update(zip(t.column("source").to_pylist(), t.column("message_id").to_pylist(), edited,
                                t.column("message_type").to_pylist(), strict=True))
        elif table == "statuses":
            statuses.update(zip(t.column("message_id").to_pylist(), t.column("status").to_pylist(), strict=True))
        else:
            rejected.update(t.column("raw_key").to_pylist())
    return messages, statuses, rejected


class _Inline:
    """`submit` that calls at once: on a folder the requests do not wait on a network, and threads would only
    take turns at the GIL with the parsing."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as e:  # handed to the caller by `result()`, as a pool's future would
            done.set_exception(e)
        return done


def run_refresh(storage: Storage, day: date, pii_salt: str | None = None, *,
                window: int = etl.DEFAULT_RETRY_WINDOW_DAYS, now: datetime | None = None,
                listings: dict[date, etl.RawListing] | None = None, journal: bool = True) -> RefreshResult:
    """One intraday run of `day` (see the module's docstring); `journal=False`: see `new_objects`."""
    started = time.perf_counter()
    started_at = now or datetime.now(UTC)
    result = RefreshResult(day)
    # Independent requests overlap (on S3 each is a round trip or more): the run manifests while the day is
    # listed; the earlier days' versions and the visible files' key columns while the new deliveries are read.
    with ThreadPoolExecutor(2, thread_name_prefix="intraday") as threads:
        pool = threads if storage.parallel_reads > 1 else _Inline()
        manifests = pool.submit(runlog.read_all, storage, day)
        new, marks = new_objects(storage, day, manifests.result, journal=journal)
        if not new:
            result.seconds = time.perf_counter() - started
            return result
        result.run = runlog.new_run_id("intraday", started_at)
        deny = erasure.load(storage, pii_salt)
        earlier = pool.submit(etl.window_versions, storage, day, window, pii_salt, result.warnings,
                              {} if listings is None else listings, deny, provisional=True)
        visible = pool.submit(visible_files, storage, day)
        rows = etl.read_day(storage, etl.RawListing(day, tuple((source, o.key) for source, o in new)), pii_salt,
                            deny=deny)
        earlier_m, earlier_s, _ = earlier.result()
        visible_m, visible_s, rejected = visible_keys(visible.result(), rows)
    messages = [m for k, m in rows.messages.items() if k not in earlier_m and k not in visible_m]
    statuses = [s for k, s in rows.statuses.items() if k not in earlier_s and k not in visible_s]
    rejects = [r for r in rows.rejects if r.raw_key not in rejected]
    result.deliveries = len(new)
    result.duplicates = rows.duplicates + len(rows.messages) - len(messages) + len(rows.statuses) - len(statuses)
    added = {"messages": messages, "statuses": statuses, "rejects": rejects}
    files = {layout.intraday_part_key(table, day, result.run): etl.to_parquet(table, table_rows)
             for table, table_rows in added.items() if table_rows}
    # one new file per table, each in one write (side by side: they are independent); the next full run
    # replaces them. The manifest only after all of them.
    side_by_side(storage, lambda item: storage.put(*item), files.items())
    result.files = {t: layout.intraday_part_key(t, day, result.run) for t, r in added.items() if r}
    result.messages, result.statuses, result.rejects = len(messages), len(statuses), len(rejects)
    times = [o.mtime for _, o in new]
    result.seconds = time.perf_counter() - started
    finished = datetime.now(UTC) if now is None else started_at + timedelta(seconds=result.seconds)
    result.lag_seconds = max(0.0, finished.timestamp() - min(times))
    runlog.write(storage, runlog.Manifest(
        run=result.run, kind="intraday", day=day, started_at=started_at.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"), seconds=result.seconds,
        consumed=runlog.consumed_by([(source, o.key) for source, o in new]),
        rows={t: len(r) for t, r in added.items()}, files=result.files,
        newest_raw_at=max(times), oldest_raw_at=min(times), arrivals=marks))
    for w in result.warnings:
        log.warning("%s", w)
    log.info("%s", result.summary())
    return result


# --- freshness, and when today is behind --------------------------------------------------------------------------


@dataclass
class Freshness:
    """How far a day's rows trail its raw deliveries (times are receive times, seconds since the epoch)."""

    day: date
    deliveries: int = 0
    newest_raw_at: float | None = None  # the newest raw delivery
    newest_row_at: float | None = None  # the newest raw delivery some run consumed (its rows are queryable)
    pending: int = 0  # raw deliveries no run consumed yet
    oldest_pending_at: float | None = None
    runs: list[runlog.Manifest] = field(default_factory=list)

    def lag_seconds(self, now: datetime) -> float:
        """How long the oldest delivery not yet in a row has waited (0 when every delivery is in)."""
        return 0.0 if self.oldest_pending_at is None else max(0.0, now.timestamp() - self.oldest_pending_at)


def freshness(storage: Storage, day: date) -> Freshness:
    runs = runlog.read_all(storage, day)
    consumed = runlog.consumed_keys(runs)
    objects = raw_objects(storage, day)
    f = Freshness(day, deliveries=len(objects), runs=runs)
    done = [o.mtime for _, o in objects if o.key in consumed]
    pending = [o.mtime for _, o in objects if o.key not in consumed]
    f.newest_raw_at = max((o.mtime for _, o in objects), default=None)
    f.newest_row_at = max(done, default=None)
    f.pending, f.oldest_pending_at = len(pending), min(pending, default=None)
    return f


def today_reason(storage: Storage, day: date, now: datetime | None = None,
                 interval_minutes: int = etl.DEFAULT_INTERVAL_MINUTES, fresh: Freshness | None = None) -> str | None:
    """Today is behind when a raw delivery older than two intervals is not in a row yet (None: it is fresh)."""
    now = now or datetime.now(UTC)
    f = fresh or freshness(storage, day)
    lag = f.lag_seconds(now)
    if lag > 2 * interval_minutes * 60:
        return (f"{f.pending} raw deliveries not in a row yet, the oldest received {lag / 60:.0f} min ago (more than "
                f"two {interval_minutes}-minute intervals): run chatlake refresh")
    return None

