"""`chatlake import`: an export's rows into the lake, beside the ETL's, counted once (docs/imports.md).

The parsers (`telegram_export`, `whatsapp_export`) are pure; this module is the lake side. For one export:
keep the file under `imports/` (content-addressed), hash identifiers as the ETL does (`PII_MODE=hash`), drop the
rows the lake already holds, and write the rest as `enriched/messages/dt=D/import-<digest>.parquet`, one file per
export and day sent, which the ETL keeps and never counts as its own. The lake's rows are read for the days the
export covers and the days either side (a message sent just before midnight may have been received after it).

Which rows are "already held":
- rows of other imports with the same `(source, message_id, edited_at)` (a re-export of the same chat);
- rows the webhook captured: by that same key for Telegram supergroups and channels (whose message numbers are the
  chat's own, the same for the bot and for every member); by a fingerprint elsewhere: Telegram (chat, sender, second,
  text), WhatsApp (minute, text, direction, party): the party of an incoming message is its sender (phone digits,
  else the name), of an outgoing one the chat.
The export's own earlier files are not compared with: importing it again rewrites them from scratch, so the result
depends only on the export and the rest of the lake.
"""

from __future__ import annotations

import gc
import io
import json
import mimetypes
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib import erasure, layout, parquet, pii
from chalicelib.storage import NotFound, Storage
from chalicelib.values import decode
from chatlake.imports import telegram_export, whatsapp_export
from chatlake.imports.rows import (
    CHAT_ID,
    DAY_MS,
    DIRECTION,
    EDITED_AT,
    EPOCH_DAY,
    MEDIA_MIME_TYPE,
    MESSAGE_ID,
    SENDER_ID,
    SENDER_PHONE,
    SENT_AT,
    SOURCE,
    TEXT,
    Row,
    as_messages,
    day_of,
    days_sent,
    of_messages,
    parquet_by_day,
)

RECORD_FORMAT = 1
STORERS = 8  # objects stored at once (waiting on the disk or the network)
MAX_ZIP_BYTES = 4 << 30  # what a .zip may unpack to: a phone's export is far smaller; a zip bomb is not
Progress = Callable[[int, int], None]
_KEY_COLUMNS = ["source", "message_id", "edited_at", "sent_at", "chat_id", "chat_type", "sender_id", "sender_phone",
                "sender_name", "text", "direction"]


class ImportFailed(Exception):
    """The export cannot be imported as given (not an export, an unreadable archive): one line that says why."""


class NeedsOption(Exception):
    """The export is readable, but only with an option the person must choose (exit 2)."""


@dataclass
class ImportResult:
    """What one import did, for the summary and the tests."""

    source: str
    export_key: str
    zone: str
    dry_run: bool
    chats: list[str] = field(default_factory=list)
    messages: int = 0  # rows the export gives
    imported: int = 0
    duplicates: int = 0
    unreadable: list[str] = field(default_factory=list)
    days: dict[str, int] = field(default_factory=dict)  # day sent -> rows written
    media_stored: int = 0
    forgotten: int = 0  # rows of people an erasure request forgot: never imported
    date_order: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        first, last = (min(self.days), max(self.days)) if self.days else ("", "")
        return {"source": self.source, "chats": len(self.chats), "messages": self.messages, "imported": self.imported,
                "duplicates": self.duplicates, "unreadable": len(self.unreadable), "days": len(self.days),
                "first_day": first, "last_day": last, "media": self.media_stored, "forgotten": self.forgotten,
                "time_zone": self.zone}


SUMMARY_COLUMNS = ["source", "chats", "messages", "imported", "duplicates", "unreadable", "days", "first_day",
                   "last_day", "media", "time_zone"]


# --- time zones --------------------------------------------------------------------------------------------------


def zone_named(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise NeedsOption(f"--tz {name!r} is not a time zone: use an IANA name such as Europe/Madrid or "
                          "America/Sao_Paulo") from None


def machine_zone() -> tuple[tzinfo, str]:
    """This machine's zone and its name: $TZ, else what /etc/localtime links to, else its current UTC offset."""
    for candidate in (os.environ.get("TZ", "").lstrip(":"), _localtime_link()):
        if candidate:
            try:
                return ZoneInfo(candidate), candidate
            except (ZoneInfoNotFoundError, ValueError):
                continue
    local = datetime.now().astimezone().tzinfo or UTC
    return local, f"{datetime.now(local).strftime('UTC%z')} (this machine's offset; it has no zone name)"


def _localtime_link() -> str | None:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    return target.partition("zoneinfo/")[2] or None


# --- the two kinds of export ---------------------------------------------------------------------------------------


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """An export becomes hundreds of thousands of objects at once (the decoded document, the rows), which makes
    Python's cyclic garbage collector walk them all again and again: a third of an import's time, for no garbage
    (none of them form cycles). It is paused for the import and put back as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_telegram(storage: Storage, data: bytes, *, zone: tzinfo, zone_name: str, me: str | None = None,
                    pii_salt: str | None = None, dry_run: bool = False, progress: Progress | None = None
                    ) -> ImportResult:
    with _no_cycle_collection():
        return _import_telegram(storage, data, zone, zone_name, me, pii_salt, dry_run, progress)


def _import_telegram(storage: Storage, data: bytes, zone: tzinfo, zone_name: str, me: str | None,
                     pii_salt: str | None, dry_run: bool, progress: Progress | None) -> ImportResult:
    # hashlib lets go of the GIL over a large buffer: the file's digest is taken on a thread while orjson decodes.
    with ThreadPoolExecutor(1, thread_name_prefix="import-digest") as pool:
        hashing = pool.submit(layout.digest, data)
        try:
            document = decode(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ImportFailed(f"the file is not readable JSON ({e}): give Telegram Desktop's result.json, "
                               "exported as machine-readable JSON") from None
        digest = hashing.result()
    key = layout.import_key("telegram", digest, "json")
    try:
        export = telegram_export.parse(document, key, zone, me=me, progress=progress)
    except telegram_export.NotAnExport as e:
        raise ImportFailed(str(e)) from None
    result = ImportResult("telegram", key, zone_name, dry_run, chats=export.chats, unreadable=export.unreadable)
    _load(storage, data, digest, export.rows, {}, {}, result, pii_salt, progress)
    return result


def import_whatsapp(storage: Storage, data: bytes, file_name: str, *, zone: tzinfo, zone_name: str,
                    chat: str | None = None, me: str | None = None, date_order: str | None = None,
                    pii_salt: str | None = None, dry_run: bool = False, progress: Progress | None = None
                    ) -> ImportResult:
    with _no_cycle_collection():
        return _import_whatsapp(storage, data, file_name, zone, zone_name, chat, me, date_order, pii_salt, dry_run,
                                progress)


def _import_whatsapp(storage: Storage, data: bytes, file_name: str, zone: tzinfo, zone_name: str, chat: str | None,
                     me: str | None, date_order: str | None, pii_salt: str | None, dry_run: bool,
                     progress: Progress | None) -> ImportResult:
    digest = layout.digest(data)
    is_zip = data[:4] == b"PK\x03\x04"
    key = layout.import_key("whatsapp", digest, "zip" if is_zip else "txt")
    media: dict[str, bytes] = {}
    text_name = file_name
    if is_zip:
        data_text, text_name, media = _unzip(data)
    else:
        data_text = data
    chat = chat or whatsapp_export.chat_name_of(file_name) or whatsapp_export.chat_name_of(text_name)
    if not chat:
        raise NeedsOption(f"cannot tell the chat's name from the file name {Path(file_name).name!r} (iOS names the "
                          "text _chat.txt): give it with --chat NAME, as the phone shows the chat")
    try:
        export = whatsapp_export.parse(data_text, chat, key, zone, me=me, date_order=date_order, files=media.keys(),
                                       progress=progress)
    except whatsapp_export.DateOrderUnknown as e:
        raise NeedsOption(str(e)) from None
    if not export.rows:
        raise ImportFailed(_no_messages(data_text, text_name, export.unreadable))
    if me is not None and not any(r[DIRECTION] == "out" for r in export.rows):
        raise NeedsOption(f"--me {me!r} wrote none of the messages: give your name exactly as the export shows it")
    unreadable = [f"line {n}: {line[:120]}" for n, line in export.unreadable]
    result = ImportResult("whatsapp", key, zone_name, dry_run, chats=[chat], unreadable=unreadable,
                          date_order=export.date_order)
    _load(storage, data, digest, export.rows, export.attachments, media, result, pii_salt, progress)
    return result


def _no_messages(text: bytes, name: str, unreadable: list[tuple[int, str]]) -> str:
    """Why a text gave no message, and what to do: nothing is imported from it."""
    shown = Path(name).name
    if not text.strip():
        return f"{shown} is empty: give the text WhatsApp's \"Export chat\" makes (or its .zip)"
    if text.lstrip()[:1] == b"{":
        return f"{shown} is JSON, not a WhatsApp export: for Telegram Desktop's result.json use " \
               "`chatlake import telegram-export`"
    first = f"; line {unreadable[0][0]}: {unreadable[0][1][:80]}" if unreadable else ""
    return (f"no line of {shown} is a WhatsApp message (\"15/01/2023, 10:00 - Name: text\" or \"[15/01/2023, "
            f"10:00:00] Name: text\", in any date order and clock){first}")


def _unzip(data: bytes) -> tuple[bytes, str, dict[str, bytes]]:
    """The chat's text, its name in the archive, and every other file (the media) by base name."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [i for i in archive.infolist() if not i.is_dir()]
        if sum(i.file_size for i in members) > MAX_ZIP_BYTES:
            raise ImportFailed(f"the .zip unpacks to more than {MAX_ZIP_BYTES >> 30} GiB: not a chat export")
        texts = [i for i in members if i.filename.lower().endswith(".txt")]
        chosen = next((i for i in texts if Path(i.filename).name == "_chat.txt"), None) or (
            texts[0] if len(texts) == 1 else next((i for i in texts if "whatsapp" in i.filename.lower()), None))
        if chosen is None:
            raise ImportFailed("the .zip holds no chat text (_chat.txt or \"WhatsApp Chat with ….txt\"): is it "
                               "WhatsApp's \"Export chat\" archive?")
        media = {Path(i.filename).name: archive.read(i) for i in members if i is not chosen}
        return archive.read(chosen), chosen.filename, media
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise ImportFailed(f"the .zip cannot be read ({e})") from None


# --- into the lake -------------------------------------------------------------------------------------------------


def _load(storage: Storage, data: bytes, digest: str, rows: list[Row], attachments: dict[str, Row],
          media: dict[str, bytes], result: ImportResult, pii_salt: str | None, progress: Progress | None) -> None:
    from chalicelib import etl

    result.messages = len(rows)
    deny = erasure.load(storage, pii_salt)  # a forgotten person stays forgotten, whatever an old export holds
    if deny or pii_salt:  # the deny list and the hashing are shared with the ETL, which works on Messages
        messages = as_messages(rows)
        if deny:
            kept = [m for m in messages if not deny.drops_message(m)]
            result.forgotten, messages = len(messages) - len(kept), kept
        if pii_salt:
            pii.hash_rows(messages, [], pii_salt)
        rows = of_messages(messages)
    sent_days = days_sent(rows)
    near = sorted({EPOCH_DAY + timedelta(days=d + k) for d in sent_days for k in (-1, 0, 1)})
    held, own = _lake_keys(storage, near, digest, result.source)
    keep = _new_rows(rows, held, result)
    days = days_sent(keep) if len(keep) < len(rows) else sent_days
    result.imported = len(keep)
    result.days = {day_of(d * DAY_MS).isoformat(): days[d] for d in sorted(days)}
    stored = {name: r for name, r in attachments.items() if name in media}
    missing = len(attachments) - len(stored)
    if missing and result.export_key.endswith(".zip"):
        result.warnings.append(f"{missing} attachment(s) named by messages are not in the export: their rows keep "
                               "the file name as media_id")
    if result.dry_run:
        result.media_stored = len(stored)
        return
    storage.put(result.export_key, data, overwrite=False)  # first: no row is in the lake without its export
    total, done = result.imported, 0
    previous = _previous_days(storage, result.source, digest)
    written: set[date] = set()
    # The media and the days' files are stored side by side: a put waits on the disk or the network, not on Python
    # (on S3 a put is tens of milliseconds, and an export spans hundreds of days).
    with ThreadPoolExecutor(STORERS, thread_name_prefix="import-store") as pool:
        media_objects: dict[str, bytes] = {}  # key -> bytes: two attachments with the same bytes are one object
        for name, r in stored.items():
            body = media[name]
            ext = (Path(name).suffix or mimetypes.guess_extension(r[MEDIA_MIME_TYPE] or "") or ".bin").lower()
            media_objects[layout.media_key(result.source, day_of(r[SENT_AT]), layout.digest(body), ext)] = body
        media_puts = [pool.submit(storage.put, key, body, overwrite=False) for key, body in media_objects.items()]
        day_puts = []
        for day, body, n in parquet_by_day(keep, days):
            day_puts.append(pool.submit(storage.put, layout.import_part_key("messages", day, digest), body))
            written.add(day)
            done += n
            if progress is not None:
                progress(done, total)
        for put in day_puts:
            put.result()
        result.media_stored = sum(put.result() for put in media_puts)
    for key in sorted(own | {layout.import_part_key("messages", d, digest) for d in previous}):
        day = layout.day_of(key)
        if day is not None and day not in written:  # an earlier import of this export wrote rows now held elsewhere
            storage.delete(key)
    record = {"format": RECORD_FORMAT, "source": result.source, "export": result.export_key, "time_zone": result.zone,
              "date_order": result.date_order, "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "messages": result.messages, "imported": result.imported, "duplicates": result.duplicates,
              "days": result.days, "unreadable": [u.partition(":")[0] for u in result.unreadable],
              "pii": etl.pii_mark(pii_salt)}
    storage.put(layout.import_record_key(result.source, digest), json.dumps(record, indent=1).encode())


def _new_rows(rows: list[Row], held: Held, result: ImportResult) -> list[Row]:
    """The rows the lake does not hold yet, each version once (the first by day sent, then file order);
    `result.duplicates` counts the others."""
    if not held.versions and not held.fingerprints and _versions_unique(rows):
        return rows  # a fresh lake, and no version twice: nothing to compare (most first imports)
    order = sorted(range(len(rows)), key=lambda i: rows[i][SENT_AT] // DAY_MS)  # stable: file order within a day
    keep: list[Row] = []
    seen: set[tuple] = set()
    for i in order:
        r = rows[i]
        version = _version(r)
        if version in seen or held.has(r):
            result.duplicates += 1
            continue
        seen.add(version)
        keep.append(r)
    return keep


def _versions_unique(rows: list[Row]) -> bool:
    """Whether no version comes twice. The rows of one export share its source, so a version is told by the message
    id alone where there is no edit time (most rows): a set of strings, not of a tuple per row."""
    originals = {r[MESSAGE_ID] for r in rows if r[EDITED_AT] is None}
    edits = {(r[MESSAGE_ID], r[EDITED_AT]) for r in rows if r[EDITED_AT] is not None}
    return len(originals) + len(edits) == len(rows)


def _previous_days(storage: Storage, source: str, digest: str) -> list[date]:
    try:
        record = json.loads(storage.get(layout.import_record_key(source, digest)))
        return [date.fromisoformat(d) for d in record.get("days", {})]
    except (NotFound, ValueError, TypeError, AttributeError):
        return []


@dataclass
class Held:
    """The rows of the lake an export's rows are compared with (see the module's docstring)."""

    versions: set[tuple] = field(default_factory=set)  # (source, message_id, edited_at): imports, and Telegram ids
    fingerprints: set[tuple] = field(default_factory=set)  # rows the webhook captured

    def has(self, r: Row) -> bool:
        if _version(r) in self.versions:
            return True
        return any(f in self.fingerprints for f in export_fingerprints(r))


_version = itemgetter(SOURCE, MESSAGE_ID, EDITED_AT)  # a row's (source, message_id, edited_at): one version


def export_fingerprints(r: Row) -> Iterable[tuple]:
    """The fingerprint of an imported row (none where it cannot be decided: a message without text)."""
    text, sent_at = r[TEXT], r[SENT_AT]
    if text is None:
        return ()
    if r[SOURCE] == "telegram":
        return (("telegram", r[CHAT_ID], r[SENDER_ID], sent_at // 1000, text),)
    direction = r[DIRECTION]
    party = r[CHAT_ID] if direction == "out" else (r[SENDER_PHONE] or _name(r[SENDER_ID]))
    return (("whatsapp", sent_at // 60000, text, direction, party),)


def lake_fingerprints(r: dict[str, Any]) -> Iterable[tuple]:
    """The fingerprints a webhook row answers to (a WhatsApp sender is known by number and by profile name)."""
    text, sent = r["text"], r["sent_at"]
    if text is None or sent is None:
        return ()
    if r["source"] == "telegram":
        return (("telegram", r["chat_id"], r["sender_id"], sent // 1000, text),)
    if r["direction"] == "out":
        parties = {r["chat_id"]}
    else:
        parties = {r["sender_phone"], r["sender_id"], _name(r["sender_name"])}
    return [("whatsapp", sent // 60000, text, r["direction"], p) for p in parties if p is not None]


def _name(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def _lake_keys(storage: Storage, days: list[date], digest: str, source: str) -> tuple[Held, set[str]]:
    """What the lake holds on those days (other imports' versions, the webhook's rows), and this export's own files.
    The days are listed and read side by side (on S3 each listing and read waits on the network)."""
    held, own = Held(), set()
    mine = layout.IMPORT_FILE_PREFIX + digest
    with ThreadPoolExecutor(STORERS, thread_name_prefix="import-read") as pool:
        for files in pool.map(lambda day: _day_files(storage, day, mine), days):
            for key, table in files:
                if table is None:
                    own.add(key)
                    continue
                columns = {c: parquet.values(table, c) for c in _KEY_COLUMNS}
                from_import = layout.is_import_file(key)
                for values in zip(*columns.values(), strict=True):
                    r = dict(zip(_KEY_COLUMNS, values, strict=True))
                    if r["source"] != source:
                        continue
                    if from_import or r["chat_type"] in ("supergroup", "channel"):
                        held.versions.add((r["source"], r["message_id"], r["edited_at"]))
                    if not from_import:
                        held.fingerprints.update(lake_fingerprints(r))
    return held, own


def _day_files(storage: Storage, day: date, mine: str) -> list[tuple[str, Any]]:
    """The day's `messages` files: (key, the columns an import compares with), not read (None) for this export's own
    files (`mine`: their name's start)."""
    import pyarrow.parquet as pq

    files = []
    for key in storage.keys(layout.enriched_prefix("messages", day)):
        if not key.endswith(".parquet"):
            continue
        own = key.rpartition("/")[2].startswith(mine)
        files.append((key, None if own else pq.read_table(io.BytesIO(storage.get(key)), columns=_KEY_COLUMNS)))
    return files

