"""Media capture: the bytes of the lake's media messages, fetched before the platforms forget them, and the
`media` table that says where each file is (or why it is not there yet).

A run looks at the days whose media may still be fetched (today and the 7 before: a WhatsApp media id lives 7
days). For each day it reads the day's `media` table (`enriched/media/dt=D/part-0.parquet`), adds a `pending`
row for each media id of the raw deliveries that arrived since its last look (the table's own metadata records
when that was), then fetches the rows that are due: new ones at once, failed attempts with an exponential
backoff, until the window closes (`expired`). Bytes are stored content-addressed under
`media/source=<s>/dt=<day>/<sha256>.<ext>` (the same bytes twice are one object), streamed: large files go to S3
in a multipart upload from the spooled file, so memory stays at one part. The table is rewritten after every
few files and at the end of the run, merged with what is stored at that moment; a run killed in between loses
only the rows since its last write, and the next run fetches them again (storing the same bytes is a no-op).

The ETL never reads or writes this table: it is not one of `layout.TABLES`. pyarrow is imported lazily.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from chalicelib import layout, parquet, pii
from chalicelib.media import Fetched, MediaError, clean_mime, extension
from chalicelib.schema import MediaRow
from chalicelib.storage import FolderStorage, NotFound, S3Storage, Storage, StorageError

log = logging.getLogger("chatlake.media")

TABLE = layout.MEDIA_TABLE
STATUSES = ("stored", "pending", "failed", "too_large", "expired", "disabled")
WINDOW_DAYS = 7  # a WhatsApp media id expires 7 days after the message; Telegram's files are retried as long
RESCAN_MARGIN = 600.0  # seconds: raw objects written this long before the last look are read again (S3 times the
#                        start of an upload, so one that finished after the look may carry an earlier time)
RESCAN_OLD_DAYS_EVERY = 3600.0  # days before yesterday rarely get deliveries (retries): look at their raw hourly
BACKOFF_FIRST = 300.0  # seconds after the first failed attempt; doubles each time
BACKOFF_MAX = 6 * 3600.0
PART_SIZE = 8 * 1024 * 1024  # S3 multipart part size (at least 5 MiB on S3; smaller in tests on moto)
FORMAT = "1"


class Fetcher(Protocol):
    source: str

    def fetch(self, media_id: str) -> Fetched: ...


class EumFetcher(Protocol):
    """End User Messaging Social's media (`media_eum.EumMedia`): the raw event names the phone number to ask for."""

    def fetch(self, media_id: str, raw_key: str) -> Fetched: ...

    def clean_staging(self, now: float) -> None: ...


@dataclass
class Capture:
    """What a capture run needs: the lake, a fetcher per platform whose token is set (and why the others are off),
    the PII salt (media rows join `messages`, whose ids it hashes), and how long the run may start new fetches."""

    storage: Storage
    fetchers: dict[str, Fetcher]
    disabled: dict[str, str] = field(default_factory=dict)  # source (or whatsapp_eum) -> why it has no fetcher
    pii_salt: str | None = None
    part_size: int = PART_SIZE
    budget: float | None = None  # seconds; None: fetch everything due
    checkpoint_files: int = 200  # rewrite the table after this many attempts ...
    checkpoint_seconds: float = 30.0  # ... or this many seconds, whichever comes first
    clock: Callable[[], float] = time.time
    eum: EumFetcher | None = None  # media of raw/source=whatsapp_eum events; None: `disabled[whatsapp_eum]` says why


@dataclass
class DayCapture:
    """What one day's capture did, and the day's table afterwards."""

    day: date
    found: int = 0  # rows added from new raw deliveries
    attempted: int = 0
    fetched_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # rows per status after the run
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"day": str(self.day), "found": self.found, "attempted": self.attempted,
                **{s: self.counts.get(s, 0) for s in STATUSES}, "bytes": self.fetched_bytes,
                "seconds": round(self.seconds, 2)}

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := self.counts.get(s)))
        return (f"{self.day}: {self.found} new media, {self.attempted} fetches ({self.fetched_bytes:,} bytes); "
                f"table: {counts or 'empty'} in {self.seconds:.1f} s")


RESULT_COLUMNS = ["day", "found", "attempted", *STATUSES, "bytes", "seconds"]


# --- the table ---------------------------------------------------------------------------------------------------


def read_table(storage: Storage, day: date) -> tuple[dict[tuple[str, str], MediaRow], float | None]:
    """The day's media rows by (source, media_id), and when its raw deliveries were last looked at."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(io.BytesIO(storage.get(layout.part_key(TABLE, day))))
    except NotFound:
        return {}, None
    except (OSError, ValueError, pa.ArrowException) as e:
        log.warning("the media table of %s is unreadable (%s): rebuilding it from raw", day, e)
        return {}, None
    meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
    names = [n for n in MediaRow.__slots__ if n in data.column_names]  # type: ignore[attr-defined]
    columns = [parquet.values(data, n) for n in names]
    rows = {}
    for values in zip(*columns, strict=True):
        record = dict(zip(names, values, strict=True))
        record["attempts"] = record.get("attempts") or 0
        row = MediaRow(**record)
        rows[(row.source, row.media_id)] = row
    scanned = meta.get("scanned_until")
    return rows, float(scanned) if scanned and meta.get("format") == FORMAT else None


def write_table(storage: Storage, day: date, rows: Iterable[MediaRow], scanned_until: float | None) -> None:
    from chalicelib.etl import to_parquet

    metadata = {"format": FORMAT, "scanned_until": repr(scanned_until or 0.0)}
    storage.put(layout.part_key(TABLE, day), to_parquet(TABLE, list(rows), metadata))


_RANK = {"stored": 3, "failed": 2, "too_large": 2, "expired": 2}


def merge(ours: MediaRow, theirs: MediaRow) -> MediaRow:
    """One row of two writers (a scheduled run and `chatlake media fetch`): stored wins, then the most tried."""
    def rank(r: MediaRow) -> tuple:
        return _RANK.get(r.status, 1), r.attempts, r.fetched_at or 0

    return theirs if rank(theirs) > rank(ours) else ours


def save(storage: Storage, day: date, rows: dict[tuple[str, str], MediaRow], scanned_until: float | None) -> None:
    """Write the day's table merged with what is stored now, so that a concurrent writer's rows are kept."""
    current, their_scan = read_table(storage, day)
    for key, theirs in current.items():
        rows[key] = merge(rows[key], theirs) if key in rows else theirs
    if their_scan and scanned_until:  # the earlier look: what only the other writer saw is looked at again
        scanned_until = min(scanned_until, their_scan)
    write_table(storage, day, rows.values(), scanned_until)


# --- finding media in the raw deliveries --------------------------------------------------------------------------


def scan(storage: Storage, day: date, since: float | None, pii_salt: str | None) -> list[MediaRow]:
    """A pending row for each media id of the day's raw deliveries written after `since` (all when None), in
    source order: a media id that came by both doors keeps the webhook's raw_key (fetched with the Graph API)."""
    from chalicelib.etl import parse_delivery

    found: list[MediaRow] = []
    seen: set[tuple[str, str]] = set()
    for source in layout.RAW_SOURCES:
        for info in storage.list(layout.raw_prefix(source, day)):
            if not info.key.endswith(".json") or (since is not None and info.mtime < since - RESCAN_MARGIN):
                continue
            try:
                body = storage.get(info.key)
            except NotFound:
                continue
            messages = [m for m in parse_delivery(source, info.key, body).messages if m.media_id]
            if pii_salt:
                pii.hash_rows(messages, [], pii_salt)
            for m in messages:
                if (m.source, m.media_id) not in seen:
                    seen.add((m.source, m.media_id))  # type: ignore[arg-type]
                    found.append(MediaRow(m.source, m.media_id, m.message_id,  # type: ignore[arg-type]
                                          m.message_type, "pending", mime_type=clean_mime(m.media_mime_type),
                                          raw_key=info.key))
    return found


# --- storing the bytes ---------------------------------------------------------------------------------------------


def exists(storage: Storage, key: str) -> bool:
    if isinstance(storage, FolderStorage):  # one stat, not a listing of the day's folder
        return os.path.exists(os.path.join(storage.root, *key.split("/")))
    return any(o.key == key for o in storage.list(key))


def store_file(storage: Storage, key: str, fetched: Fetched, part_size: int = PART_SIZE) -> bool:
    """Put the spooled file at `key` unless an object is there (same key, same bytes); True if written. Never a
    partial object: a folder lake renames a complete copy into place, S3 completes a multipart upload or aborts."""
    if exists(storage, key):
        return False
    if isinstance(storage, FolderStorage):
        target = os.path.join(storage.root, *key.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
        try:
            try:
                os.rename(fetched.path, tmp)  # the spool on the same file system: no second copy
            except OSError:
                shutil.copyfile(fetched.path, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write {target}: {e.strerror or e}") from e
        return True
    if isinstance(storage, S3Storage) and fetched.size > part_size:
        _multipart(storage, key, fetched.path, part_size)
        return True
    with open(fetched.path, "rb") as f:
        return storage.put(key, f.read(), overwrite=False)


def _multipart(storage: S3Storage, key: str, path: str, part_size: int) -> None:
    """One S3 multipart upload from the file, a part in memory at a time; aborted on any failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    client, bucket, full = storage.client, storage.bucket, storage.prefix + key
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=full)["UploadId"]
    except (BotoCoreError, ClientError) as e:
        raise StorageError(f"cannot write s3://{bucket}/{full}: {e}") from e
    try:
        parts = []
        with open(path, "rb") as f:
            number = 1
            while chunk := f.read(part_size):
                reply = client.upload_part(Bucket=bucket, Key=full, UploadId=upload, PartNumber=number, Body=chunk)
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
                number += 1
                del chunk
        client.complete_multipart_upload(Bucket=bucket, Key=full, UploadId=upload,
                                         MultipartUpload={"Parts": parts})
    except BaseException as e:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload)
        except (BotoCoreError, ClientError):
            log.warning("could not abort the multipart upload of %s; a lifecycle rule removes it", full)
        if isinstance(e, BotoCoreError | ClientError):
            raise StorageError(f"cannot write s3://{bucket}/{full}: {e}") from e
        raise


# --- retries and expiry ----------------------------------------------------------------------------------------------


def window_closes(day: date) -> float:
    """When the media of messages received on `day` are no longer fetched (epoch seconds): 7 days after the end of
    the day (WhatsApp's media ids live 7 days from the message)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + (WINDOW_DAYS + 1) * 86400


def backoff(attempts: int) -> float:
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def is_due(row: MediaRow, now: float, force: bool) -> bool:
    """Whether to try the row now. `force` (`chatlake media fetch`): every row not stored or failed for good, at
    once; otherwise new rows and rows whose backoff has passed."""
    if row.status in ("stored", "failed"):
        return False
    if row.status in ("too_large", "expired"):
        return force and (row.status == "too_large" or row.source == "telegram")
    if force or row.fetched_at is None or row.status == "disabled":
        return True
    return now >= row.fetched_at / 1000 + backoff(row.attempts)


def _expire(row: MediaRow, day: date) -> None:
    why = row.error or "never fetched"
    if row.source == "whatsapp":
        row.error = f"WhatsApp media ids expire 7 days after the message (received {day}); not fetched: {why}"
    else:
        row.error = f"not fetched within {WINDOW_DAYS} days of {day} (retry: chatlake media fetch --date {day}): {why}"
    row.status = "expired"


# --- a run ---------------------------------------------------------------------------------------------------------


def capture_day(cap: Capture, day: date, *, force: bool = False, known: set[tuple[str, str]] | None = None,
                progress: Callable[[int, int], None] | None = None, deadline: float | None = None) -> DayCapture:
    """Bring the day's media table up to date and fetch what is due (see the module's docstring)."""
    started = time.perf_counter()
    result = DayCapture(day)
    storage, now = cap.storage, cap.clock()
    rows, scanned_until = read_table(storage, day)
    had_table = scanned_until is not None or bool(rows)
    rescan_every = 0.0 if day >= datetime.fromtimestamp(now, UTC).date() - timedelta(days=1) else RESCAN_OLD_DAYS_EVERY
    if force or scanned_until is None or now - scanned_until >= rescan_every:
        look = now
        for row in scan(storage, day, None if force else scanned_until, cap.pii_salt):
            key = (row.source, row.media_id)
            if key not in rows and (known is None or key not in known):
                rows[key] = row
                result.found += 1
        scanned_until = look
    closes = window_closes(day)
    for row in rows.values():
        if row.status in ("pending", "disabled") and now >= closes and not (force and row.source == "telegram"):
            _expire(row, day)
    due = [r for r in rows.values() if is_due(r, now, force)]
    last_save, since_save = time.monotonic(), 0
    for done, row in enumerate(due, 1):
        if deadline is not None and time.monotonic() >= deadline:
            result.warnings.append(f"{day}: {len(due) - done + 1} media left for the next run (time budget)")
            break
        _attempt(cap, day, row, result)
        since_save += 1
        if progress:
            progress(done, len(due))
        if since_save >= cap.checkpoint_files or time.monotonic() - last_save >= cap.checkpoint_seconds:
            save(storage, day, rows, scanned_until)
            last_save, since_save = time.monotonic(), 0
    if rows or had_table:
        save(storage, day, rows, scanned_until)
    result.counts = {s: sum(1 for r in rows.values() if r.status == s) for s in STATUSES}
    result.seconds = time.perf_counter() - started
    return result


def _fetch(cap: Capture, row: MediaRow) -> Callable[[], Fetched] | str:
    """How the row's bytes are fetched, or why they cannot be: End User Messaging Social's own API for media of
    its events (no token), the platform's fetcher (its token) for webhook deliveries."""
    if row.raw_key and layout.source_of(row.raw_key) == layout.EUM_SOURCE:
        eum, raw_key = cap.eum, row.raw_key
        if eum is None:
            return cap.disabled.get(layout.EUM_SOURCE, "End User Messaging Social media need the lake on S3")
        return lambda: eum.fetch(row.media_id, raw_key)
    fetcher = cap.fetchers.get(row.source)
    if fetcher is None:
        return cap.disabled.get(row.source, f"no {row.source} media token is set")
    return lambda: fetcher.fetch(row.media_id)


def _attempt(cap: Capture, day: date, row: MediaRow, result: DayCapture) -> None:
    fetch = _fetch(cap, row)
    if isinstance(fetch, str):
        row.status, row.error = "disabled", fetch
        return
    result.attempted += 1
    row.attempts += 1
    row.fetched_at = int(cap.clock() * 1000)
    try:
        fetched = fetch()
    except MediaError as e:
        row.status = {"retry": "pending", "failed": "failed", "too_large": "too_large"}.get(e.kind, "pending")
        row.error = e.message
        log.info("%s media %s: %s", row.source, row.status, e.message)
        return
    try:
        mime = row.mime_type or fetched.mime_type
        key = layout.media_key(row.source, day, fetched.sha256, extension(mime))
        store_file(cap.storage, key, fetched, cap.part_size)
    except StorageError as e:
        row.status, row.error = "pending", f"could not store the bytes: {e}"
        result.warnings.append(row.error)
        return
    finally:
        fetched.discard()
    result.fetched_bytes += fetched.size
    row.status, row.error, row.media_key = "stored", None, key
    row.sha256, row.bytes, row.mime_type = fetched.sha256, fetched.size, mime


def known_before(storage: Storage, day: date) -> set[tuple[str, str]]:
    """(source, media_id) of the window's earlier days' tables: a platform's retry on a later day adds no row."""
    known: set[tuple[str, str]] = set()
    for back in range(WINDOW_DAYS, 0, -1):
        known |= set(read_table(storage, day - timedelta(days=back))[0])
    return known


def run(cap: Capture, today: date, days: Iterable[date] | None = None, *, force: bool = False,
        on_day: Callable[[DayCapture], None] | None = None,
        progress: Callable[[int, int], None] | None = None) -> list[DayCapture]:
    """Capture the given days (default: today and the window's days before it), oldest first."""
    chosen = sorted(days) if days is not None else [today - timedelta(days=b) for b in range(WINDOW_DAYS, -1, -1)]
    deadline = time.monotonic() + cap.budget if cap.budget is not None else None
    clean_spool_leftovers()
    if cap.eum is not None:
        cap.eum.clean_staging(cap.clock())
    known = known_before(storage=cap.storage, day=chosen[0]) if chosen else set()
    results = []
    for day in chosen:
        result = capture_day(cap, day, force=force, known=known, progress=progress, deadline=deadline)
        if any(result.counts.values()):
            known |= set(read_table(cap.storage, day)[0])
        results.append(result)
        for w in result.warnings:
            log.warning("%s", w)
        if on_day:
            on_day(result)
    return results


def clean_spool_leftovers(spool: str | None = None, older_than: float = 3600.0) -> None:
    """Remove spool files of killed runs (a warm Lambda keeps /tmp between invocations)."""
    import tempfile

    spool = spool or os.path.join(tempfile.gettempdir(), "chatlake-media")
    try:
        entries = list(os.scandir(spool))
    except OSError:
        return
    for entry in entries:
        try:
            if time.time() - entry.stat().st_mtime > older_than:
                os.unlink(entry.path)
        except OSError:
            pass
