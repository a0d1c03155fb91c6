"""`chatlake forget`: erase one person (or one private chat) from every layer of the lake, with an audit record.

1. Find: the tables' rows of the person (sender, private chat, status recipient; their `raw_key` lineage), then a
   bytes search of the raw deliveries, quarantined bodies, kept imports and media objects for the identifier in any
   JSON spelling (`1` or `\\u0031` per character), for what the tables cannot show (rejects, updates that give no
   row, a reply quoting them, quarantine). Of the raw deliveries only those the ETL's mentions index
   (`chalicelib.mentions`) cannot rule out are read, and every one it does not list; afterwards the index files the
   identifier nowhere.
2. Deny list first (`chalicelib.erasure`): from then on the ETL drops the person's rows, whatever raw data says.
3. Raw layer: an object whose rows are all the person's is deleted; one that also holds others' data (a WhatsApp
   batch, a reply in a group) is redacted in place under the same key: the person's array items removed, their
   identity and texts replaced by a fixed marker. A redacted object no longer matches its content address or the
   platform's signature (see docs/erasure.md). Unreadable quarantined bodies, media and non-JSON exports that
   mention them are deleted.
4. Tables: each affected day's files are rewritten without the person's rows and committed like the ETL commits a
   day (`etl.commit_day`: one atomic write per file, the previous files put back on failure); the day's version
   file loses their versions and every commit record is restamped for what this run changed. That is exactly what a
   run of the ETL over the redacted raw data with the deny list gives (the tests check it), without re-reading
   the raw layer: a redaction that changed someone else's rows sends its day through `etl.run_day` instead.
   Import files are rewritten the same way, one atomic write per file.
5. A last pass runs the ETL for any day left behind (a killed earlier run), so a re-run always converges; then the
   audit record (`audit/erasure/<time>-<hash>.json`): keys and counts, the salted hash, never the identifier.

The operator's credentials run it, from the CLI (never a Lambda function).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from chalicelib import erasure, etl, layout, mentions, parquet, pii
from chalicelib.storage import NotFound, Storage, side_by_side
from chalicelib.values import decode

KINDS = {"phone": "--phone", "telegram-user": "--telegram-user", "wa-id": "--wa-id", "chat": "--chat"}
MIN_LENGTH = 5  # a shorter id would match inside unrelated numbers everywhere
# Keys whose scalar value names a person (Telegram users/chats, WhatsApp contacts, messages, statuses, echoes).
ID_KEYS = frozenset({"id", "wa_id", "user_id", "from", "from_user_id", "to", "to_user_id", "recipient_id",
                     "recipient_user_id", "phone_number", "from_id"})
NAME_KEYS = frozenset({"first_name", "last_name", "username", "name", "title", "vcard"})
#: WhatsApp arrays whose items are one person's: the person's items are removed, not just masked.
PERSON_ARRAYS = frozenset({"messages", "message_echoes", "statuses", "contacts"})
TABLE_COLUMNS = {"messages": ["source", "message_id", "edited_at", "message_type", "chat_id", "chat_type",
                              "sender_id", "sender_phone", "raw_key"],
                 "statuses": ["message_id", "status", "recipient_id", "raw_key"], "rejects": ["raw_key"]}


class ForgetError(Exception):
    """A request that cannot be carried out as asked (bad identifier, a group given as --chat)."""


@dataclass(frozen=True)
class Subject:
    """Who is forgotten: the identifier as the payloads and tables write it."""

    kind: str
    value: str

    @classmethod
    def parse(cls, kind: str, text: str) -> Subject:
        value = text.strip()
        if kind == "phone":
            value = re.sub(r"[\s().-]", "", value).removeprefix("+")
            if not (value.isascii() and value.isdigit()):
                raise ForgetError(f"--phone {text!r} is not a phone number: digits, as in +15551234567")
        elif kind == "wa-id":
            value = value.removeprefix("+")
            if not re.fullmatch(r"[0-9]+|[A-Z]{2}\.[A-Za-z0-9._-]+", value):
                raise ForgetError(f"--wa-id {text!r} is not a WhatsApp id: the wa_id digits or a BSUID like US.123…")
        elif kind == "telegram-user":
            if not (value.isascii() and value.isdigit()):
                raise ForgetError(f"--telegram-user {text!r} is not a Telegram user id (a positive whole number)")
        elif kind == "chat":
            value = value.removeprefix("+")
            if not re.fullmatch(r"-?[0-9]+|[A-Z]{2}\.[A-Za-z0-9._-]+", value):
                raise ForgetError(f"--chat {text!r} is not a chat id: a Telegram chat id or a WhatsApp wa_id")
        else:
            raise ForgetError(f"unknown identifier kind {kind!r}")
        if len(value.lstrip("-")) < MIN_LENGTH:
            raise ForgetError(f"{KINDS[kind]} {text!r} is too short to be an identifier (at least {MIN_LENGTH} "
                              "characters): it would match inside unrelated numbers")
        return cls(kind, value)

    @property
    def deny_kind(self) -> str:
        return erasure.CHAT if self.kind == "chat" else erasure.PERSON

    def matches(self, value: Any) -> bool:
        """A payload's scalar names this subject (`+` prefixes, Telegram Desktop's `user123`, ints)."""
        if isinstance(value, bool) or not isinstance(value, str | int):
            return False
        text = str(value)
        return text.removeprefix("+") == self.value or text.removeprefix("user") == self.value

    def pattern(self) -> re.Pattern[bytes]:
        """The identifier in raw bytes, each character as itself or JSON's `\\u00XX`, not inside a longer id."""
        parts = []
        for ch in self.value:
            esc = "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in f"{ord(ch):04x}")
            parts.append(f"(?:{re.escape(ch)}|\\\\u{esc})")
        return re.compile(("(?:(?<![0-9A-Za-z])|(?<=user))" + "".join(parts) + "(?![0-9])").encode())

    def prefilter(self) -> Callable[[bytes], bool]:
        """A cheap test that passes every body the pattern can match: the id as is, or an escape it could use."""
        plain = self.value.encode()
        escapes = sorted({f"\\u{ord(ch):04x}"[:5].encode() for ch in self.value})
        return lambda body: plain in body or any(e in body for e in escapes)

    def text_pattern(self) -> re.Pattern[str]:
        return re.compile(f"(?<![0-9A-Za-z]){re.escape(self.value)}(?![0-9])")


# --- redaction of one JSON document ---------------------------------------------------------------------------


@dataclass
class Redaction:
    changed: int = 0  # values replaced or items removed


def _mask(value: Any) -> Any:
    return erasure.MARKER_INT if isinstance(value, int) and not isinstance(value, bool) else erasure.MARKER


def _is_person(d: dict[str, Any], subject: Subject) -> bool:
    return any(k in ID_KEYS and subject.matches(v) for k, v in d.items())


def _authored(d: dict[str, Any], subject: Subject) -> bool:
    """A Telegram message (update-level or nested) the person sent."""
    sender = d.get("from")
    return "message_id" in d and isinstance(sender, dict) and _is_person(sender, subject)


def _mask_strings(node: Any, r: Redaction, skip: frozenset[str] = frozenset({"chat", "type"})) -> Any:
    if isinstance(node, str):
        r.changed += 1
        return erasure.MARKER
    if isinstance(node, list):
        return [_mask_strings(v, r, skip) for v in node]
    if isinstance(node, dict):
        return {k: (v if k in skip else _mask_strings(v, r, skip)) for k, v in node.items()}
    return node


def redact(node: Any, subject: Subject, r: Redaction, text: re.Pattern[str], parent: str = "") -> Any:
    """The document with the subject's values replaced by the marker and their WhatsApp items removed."""
    if isinstance(node, list):
        if parent in PERSON_ARRAYS:
            kept = [v for v in node if not (isinstance(v, dict) and _is_person(v, subject))]
            r.changed += len(node) - len(kept)
            node = kept
        return [redact(v, subject, r, text, parent) for v in node]
    if isinstance(node, dict):
        if _authored(node, subject):  # their message quoted inside someone else's (a reply, a pinned message)
            node = {k: (_mask_strings(v, r) if k not in ("chat", "from") else v) for k, v in node.items()}
        if _is_person(node, subject):
            out = {}
            for k, v in node.items():
                if (k in ID_KEYS or k in NAME_KEYS) and not isinstance(v, dict | list):
                    out[k] = _mask(v)
                    r.changed += 1
                elif k == "profile" and isinstance(v, dict):
                    out[k] = _mask_strings(v, r, frozenset())
                else:
                    out[k] = v
            node = out
        return {k: redact(v, subject, r, text, k) for k, v in node.items()}
    if isinstance(node, str):
        new = text.sub(erasure.MARKER, node)
        if new != node:
            r.changed += 1
        return new
    if isinstance(node, int) and not isinstance(node, bool) and subject.matches(node):
        r.changed += 1
        return erasure.MARKER_INT
    return node


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# --- rows of the subject ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowMatch:
    """Which table values name the subject: clear and, in PII_MODE=hash, hashed."""

    subject: Subject
    values: frozenset[str]

    @classmethod
    def of(cls, subject: Subject, pii_salt: str | None) -> RowMatch:
        values = {subject.value, f"user{subject.value}"}
        if pii_salt:
            h = pii.hasher(pii_salt)
            values |= {h(v) for v in list(values)}  # type: ignore[misc]
        return cls(subject, frozenset(values))

    def message(self, chat_id: Any, chat_type: Any, sender_id: Any, sender_phone: Any) -> bool:
        if chat_type == "private" and chat_id in self.values:
            return True
        return self.subject.kind != "chat" and (sender_id in self.values or sender_phone in self.values)

    def status(self, recipient_id: Any) -> bool:
        return recipient_id in self.values


def _parsed_rows(source: str, key: str, body: bytes) -> tuple[list, list, list[str]]:
    parsed = etl.parse_delivery(source, key, body)
    return parsed.messages, parsed.statuses, parsed.problems


def _row_tuple(row: Any) -> tuple:
    return tuple(getattr(row, f) for f in row.__slots__ if f != "raw_key")


# --- the plan ---------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    subject: Subject
    deny_hash: str = ""
    delete: list[str] = field(default_factory=list)  # raw, quarantine, media, import objects
    redact: dict[str, bytes] = field(default_factory=dict)  # key -> new bytes
    rerun: set[date] = field(default_factory=set)  # days whose redaction changed someone else's rows
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # file key -> {"rows": n} removed
    days: set[date] = field(default_factory=set)  # days whose tables change
    message_ids: set[str] = field(default_factory=set)  # the subject's message ids (tables and raw)
    status_ids: set[str] = field(default_factory=set)
    chat_types: set[str] = field(default_factory=set)  # types of the chat given with --chat
    scanned: int = 0  # objects of the raw, quarantine, import and media layers
    read: int = 0  # of which the search read (the others the ETL's mentions index rules out)
    mentions: dict[date, Any] = field(default_factory=dict)  # each day's usable index, as the search used it
    listings: dict[date, etl.RawListing] = field(default_factory=dict)  # each day's raw listing, as scanned

    def counts(self) -> dict[str, int]:
        layers: dict[str, int] = {}
        for key in self.delete:
            layers[f"{key.split('/', 1)[0]} deleted"] = layers.get(f"{key.split('/', 1)[0]} deleted", 0) + 1
        for key in self.redact:
            layers[f"{key.split('/', 1)[0]} redacted"] = layers.get(f"{key.split('/', 1)[0]} redacted", 0) + 1
        for key, n in self.rows.items():
            table = "import rows" if layout.is_import_file(key) else f"{key.split('/')[1]} rows"
            layers[table] = layers.get(table, 0) + n["rows"]
        return layers

    @property
    def empty(self) -> bool:
        return not (self.delete or self.redact or self.rows)


def _table_files(storage: Storage, table: str) -> list[str]:
    return [k for k in storage.keys(layout.table_prefix(table)) if k.endswith(".parquet")]


def _read_parquet(storage: Storage, key: str, columns: Iterable[str] | None = None) -> Any:
    """A table file; with `columns`, only those of them it has (finding the rows needs a few ids, not texts)."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(io.BytesIO(storage.get(key)))
    if columns is None:
        return f.read()
    return f.read(columns=[c for c in columns if c in f.schema_arrow.names])


def _message_mask(data: Any, match: RowMatch) -> Any:
    """`RowMatch.message` over a whole file, vectorised (a day holds tens of thousands of rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(sorted(match.values), pa.string())

    def named(column: str) -> Any:
        if column not in data.column_names:
            return pa.array([False] * data.num_rows)
        return pc.fill_null(pc.is_in(data.column(column), value_set=values), False)

    private = pc.fill_null(pc.equal(data.column("chat_type"), "private"), False)
    mask = pc.and_(private, named("chat_id"))
    if match.subject.kind != "chat":
        mask = pc.or_(mask, pc.or_(named("sender_id"), named("sender_phone")))
    return mask


def _in(data: Any, column: str, values: Iterable[Any]) -> Any:
    """`column in values` over a whole file, in Arrow (null: False)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(data.column(column), value_set=pa.array(sorted(values), pa.string())), False)


def _file_masks(data: Any, table: str, match: RowMatch, plan: Plan, deleted: set[str]) -> Any | None:
    """Which rows of one table file go, as an Arrow boolean array (None: none); notes the subject's message ids on
    the way. Vectorised: a day holds tens of thousands of rows."""
    import pyarrow.compute as pc

    names = data.column_names
    if table == "messages":
        mask = _message_mask(data, match)
        if match.subject.kind == "chat":
            plan.chat_types |= set(data.column("chat_type").filter(_in(data, "chat_id", match.values)).to_pylist())
        plan.message_ids |= set(data.column("message_id").filter(mask).to_pylist())
    elif table == "statuses":
        mask = _in(data, "recipient_id", match.values)
        plan.status_ids |= set(data.column("message_id").filter(mask).to_pylist())
    elif table == "rejects":
        mask = _in(data, "raw_key", deleted)
    else:  # the media table (and any other table keyed by message_id): rows of the subject's messages
        if "message_id" not in names:
            return None
        mask = _in(data, "message_id", plan.message_ids)
        if "media_key" in names:
            plan.delete += [k for k in data.column("media_key").filter(mask).to_pylist() if k]
    return mask if pc.any(mask).as_py() else None


MATCH_COLUMNS = ("message_id", "chat_id", "chat_type", "sender_id", "sender_phone", "recipient_id", "raw_key",
                 "media_key")
SCAN_THREADS = 4  # the scan only reads: threads overlap the reads' system calls even on a local disk


def _listings(raw_keys: list[str]) -> dict[date, etl.RawListing]:
    """Each day's raw listing (what `etl.list_raw` gives) from the scan's one listing of `raw/`."""
    folders: dict[str, list[str]] = {}
    for key in raw_keys:  # raw/source=S/dt=D/<sha256>.json, grouped by folder (one split per folder, not per key)
        folders.setdefault(key.rpartition("/")[0], []).append(key)
    by_day: dict[str, dict[str, list[str]]] = {}
    for folder, found in folders.items():
        parts = folder.split("/")
        if len(parts) == 3 and parts[1][7:] in layout.RAW_SOURCES and parts[2].startswith("dt="):
            by_day.setdefault(parts[2][3:], {})[parts[1][7:]] = found
    return {date.fromisoformat(d): etl.RawListing(date.fromisoformat(d), tuple(
        (s, k) for s in layout.RAW_SOURCES for k in sorted(found.get(s, ())))) for d, found in by_day.items()}


def _scan_keys(storage: Storage) -> list[str]:
    keys = [k for k in storage.keys(layout.RAW_ROOT) if k.endswith(".json")]
    keys += [k for k in storage.keys(layout.QUARANTINE_ROOT) if k.endswith(".body")]
    keys += list(storage.keys(layout.IMPORTS_ROOT)) + list(storage.keys(layout.MEDIA_ROOT))
    return keys


def _to_read(storage: Storage, keys: list[str], plan: Plan, token: str | None, pii_salt: str | None) -> list[str]:
    """The keys the bytes search must read: every raw delivery that the day's mentions index (written by the ETL)
    does not rule out, and all of the other layers (quarantine, imports, media: no index covers them)."""
    if token is None:  # an identifier without a digit run the index files under: read everything
        return keys
    days = sorted(plan.listings)
    found = zip(days, side_by_side(storage, lambda d: mentions.read(storage, d, pii_salt), days), strict=True)
    plan.mentions = {d: data for d, data in found if data is not None}
    ruled_out: set[str] = set()  # indexed keys whose entry cannot mention the subject
    skip_days: set[date] = set()  # days whose index covers the whole listing: only its candidates are read
    read: list[str] = []
    for day, data in plan.mentions.items():
        candidates = mentions.candidates(data, token)
        if mentions.covers(data, plan.listings[day].digest):
            skip_days.add(day)
            read += candidates
        else:  # raw data newer than the day's last run: keys the index does not list are read too
            ruled_out |= set(mentions.keys(data)) - set(candidates)
    skip = {f"{layout.RAW_ROOT}source={s}/dt={d.isoformat()}/" for d in skip_days for s in layout.RAW_SOURCES}
    read += [k for k in keys if k not in ruled_out and k.rpartition("/")[0] + "/" not in skip]
    return read


def _classify(plan: Plan, key: str, body: bytes, match: RowMatch, text: re.Pattern[str]) -> None:
    """One object that mentions the subject: delete or redact it, and note the rows it gave."""
    subject = match.subject
    if key.startswith(layout.QUARANTINE_ROOT):
        plan.delete += [key, key.removesuffix(".body") + ".json"]  # unreadable bytes cannot be redacted
        return
    if key.startswith(layout.MEDIA_ROOT):
        plan.delete.append(key)
        return
    try:
        value = decode(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        plan.delete.append(key)  # a text or zip export: no structure to redact safely
        return
    source = layout.source_of(key)
    if key.startswith(layout.RAW_ROOT) and source in etl.PARSERS:
        messages, statuses, problems = _parsed_rows(source, key, body)
        mine_m = [m for m in messages if match.message(m.chat_id, m.chat_type, m.sender_id, m.sender_phone)]
        mine_s = [s for s in statuses if match.status(s.recipient_id)]
        plan.message_ids |= {m.message_id for m in mine_m}
        plan.status_ids |= {s.message_id for s in mine_s}
        if subject.kind == "chat":
            plan.chat_types |= {m.chat_type for m in messages if m.chat_id == subject.value}
        if (messages or statuses) and len(mine_m) == len(messages) and len(mine_s) == len(statuses):
            plan.delete.append(key)
            return
        if subject.kind == "chat" and (messages or statuses) and not (mine_m or mine_s):
            return  # the person's messages elsewhere (a group): not the chat's, --chat keeps them
        r = Redaction()
        new = encode(redact(value, subject, r, text))
        if r.changed:
            plan.redact[key] = new
            # Someone else's rows, or the object's rejects, come out different: the ETL rewrites that day.
            others = ({_row_tuple(m) for m in messages if m not in mine_m},
                      {_row_tuple(s) for s in statuses if s not in mine_s}, problems)
            after = _parsed_rows(source, key, new)
            if others != ({_row_tuple(m) for m in after[0]}, {_row_tuple(s) for s in after[1]}, after[2]):
                day = layout.day_of(key)
                if day:
                    plan.rerun.add(day)
        return
    r = Redaction()
    new = encode(redact(value, subject, r, text))
    if r.changed:
        plan.redact[key] = new
    else:
        plan.delete.append(key)  # mentions them in a form the walk cannot reach


def make_plan(storage: Storage, subject: Subject, pii_salt: str | None,
              progress: Callable[[int, int], None] | None = None) -> Plan:
    """Everything `forget` would change, computed without changing anything (what --dry-run prints)."""
    import pyarrow.compute as pc

    plan = Plan(subject)
    match = RowMatch.of(subject, pii_salt)
    pattern, text, maybe = subject.pattern(), subject.text_pattern(), subject.prefilter()
    keys = _scan_keys(storage)
    plan.scanned = len(keys)
    plan.listings = _listings([k for k in keys if k.startswith(layout.RAW_ROOT)])
    keys = _to_read(storage, keys, plan, mentions.token(subject.value, pii_salt), pii_salt)
    plan.read = len(keys)
    for done, (key, body) in enumerate(etl.read_bodies(storage, keys, max(SCAN_THREADS, storage.parallel_reads)),
                                       1):
        if maybe(body) and pattern.search(body):
            _classify(plan, key, body, match, text)
        if progress and (done % 1000 == 0 or done == len(keys)):
            progress(done, len(keys))
    if pii_salt:  # the version files and tables hold Telegram private chats' message ids hashed
        h = pii.hasher(pii_salt)
        plan.message_ids |= {pii._hash_chat_part(i, h) for i in plan.message_ids if ":" in i}  # type: ignore[misc]
    deleted = set(plan.delete)
    for table in (*layout.TABLES, "media"):  # in this order: the media table needs the messages' ids
        files = _table_files(storage, table)
        # read side by side (S3 round trips, pyarrow's decoding off the GIL); looked at in order
        datas = side_by_side(storage, lambda k: _read_parquet(storage, k, MATCH_COLUMNS), files)
        for key, data in zip(files, datas, strict=True):
            mask = _file_masks(data, table, match, plan, deleted)
            if mask is not None:
                plan.rows[key] = {"rows": pc.sum(mask).as_py()}
                if not layout.is_import_file(key) and (day := layout.day_of(key)):
                    plan.days.add(day)
    plan.delete = sorted(set(plan.delete))
    plan.days |= {d for k in [*plan.delete, *plan.redact] if k.startswith(layout.RAW_ROOT)
                  if (d := layout.day_of(k))}
    if subject.kind == "chat" and plan.chat_types - {"private"}:
        raise ForgetError(f"chat {subject.value} is a {'/'.join(sorted(plan.chat_types - {'private'}))}, not a "
                          "private chat: forget its members with --telegram-user (--chat erases a private chat)")
    return plan


# --- applying the plan --------------------------------------------------------------------------------------------


def _filtered(storage: Storage, key: str, match: RowMatch, plan: Plan, deleted: set[str]) -> tuple[bytes, int]:
    import pyarrow.compute as pc

    table = key.split("/")[1]
    data = _read_parquet(storage, key)
    mask = _file_masks(data, table, match, plan, deleted)
    kept = data if mask is None else data.filter(pc.invert(mask))
    return parquet.table_bytes(kept), kept.num_rows


def _filter_versions(storage: Storage, day: date, plan: Plan, mark_digest: tuple[str, str]) -> None:
    """Drop the subject's versions from the day's version file; relabel it for the day's new raw listing."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    key = layout.versions_key(day)
    try:
        data = pq.read_table(io.BytesIO(storage.get(key)))
    except NotFound:
        return

    def theirs(table: str, ids: set[str]) -> Any:
        return pc.and_(pc.equal(data.column("table"), table),
                       pc.is_in(data.column("id"), value_set=pa.array(sorted(ids), pa.string())))

    keep = pc.fill_null(pc.invert(pc.or_(theirs("messages", plan.message_ids), theirs("statuses", plan.status_ids))),
                        True)
    meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
    old, new = mark_digest
    if pc.all(keep).as_py() and meta.get("raw_digest") != old:
        return
    if meta.get("raw_digest") == old:
        meta["raw_digest"] = new
    data = data.filter(keep).replace_schema_metadata(meta)
    storage.put(key, parquet.record_bytes(data))


def _rewrite(storage: Storage, key: str, data: bytes, rows: int) -> None:
    """One file of another writer (an import, the media table): one atomic write, or gone when nothing is left."""
    if rows:
        storage.put(key, data)
    else:
        storage.delete(key)


def _forget_mentions(storage: Storage, plan: Plan, pii_salt: str | None,
                     listings: dict[date, etl.RawListing]) -> None:
    """The mentions index without the subject (after the raw layer is done: a killed run's re-run still finds
    what is left). An index file this run could not use (another identifier space, damaged, a day without raw
    data) is only a shortcut: it is deleted rather than left holding the identifier."""
    token = mentions.token(plan.subject.value, pii_salt)
    if token is None:
        return  # no digit run: no index files it
    gone = set(plan.delete)
    for key in list(storage.keys(layout.MENTIONS_ROOT)):
        day = layout.day_of(key)
        data = plan.mentions.get(day) if day else None
        if data is None:
            storage.delete(key)
        elif (new := mentions.without(data, token, gone, listings[day].digest)) is not None:
            storage.put(key, new)


@dataclass
class Outcome:
    """What a run did, for the audit record and the CLI."""

    plan: Plan
    reran: list[str] = field(default_factory=list)
    record_key: str = ""
    warnings: list[str] = field(default_factory=list)


def _restamp(record: dict[str, Any], day: date, before: dict[date, str], after: dict[date, str],
             deny: tuple[str, str]) -> dict[str, Any]:
    """The commit record with what this run changed (raw listings it deleted from, the deny list), and only where
    the record was current for it before: a day already behind stays behind."""
    new = dict(record)
    if day in before and record.get("raw") == before[day]:
        new["raw"] = after[day]
    depends = dict(record.get("depends") or {})
    for d, digest in depends.items():
        dd = date.fromisoformat(d)
        if dd in before and digest == before[dd]:
            depends[d] = after[dd]
    new["depends"] = depends
    if record.get("deny", "") == deny[0]:
        new["deny"] = deny[1]
    return new


def apply(storage: Storage, plan: Plan, pii_salt: str | None, window: int,
          today: date | None = None, on_step: Callable[[str], None] | None = None) -> Outcome:
    """Carry the plan out, in an order that a killed run and its re-run converge from."""
    out = Outcome(plan)
    step = on_step or (lambda text: None)
    subject, match = plan.subject, RowMatch.of(plan.subject, pii_salt)
    today = today or datetime.now(UTC).date()
    stamp = datetime.now(UTC)
    salt, mark = erasure.salt_for(storage, pii_salt, create=True)
    plan.deny_hash = erasure.subject_hash(salt, subject.value)
    deny_before = erasure.deny_digest(storage)
    # Raw listings as they are now, for the days whose listing this run changes and the days that depend on them.
    touched = {d for k in plan.delete if k.startswith(layout.RAW_ROOT) if (d := layout.day_of(k))}
    gone = set(plan.delete)
    now = {d: etl.RawListing(d, tuple(o for o in listing.objects if o[1] not in gone)) if d in touched else listing
           for d, listing in plan.listings.items()}  # the raw listings once this run's deletions are done
    before = {d: plan.listings[d].digest for d in touched if d in plan.listings}
    after = {d: now[d].digest for d in before}
    # 1. the deny list: from here on the ETL drops the subject's rows whatever the raw layer holds
    entry = {"hash": plan.deny_hash, "kind": subject.deny_kind, "salt": mark, "at": stamp.isoformat(timespec="seconds")}
    run = mentions.digit_run(subject.value)
    if run and run != subject.value:  # a BSUID's or a negative chat id's digits, as the mentions index files them
        entry["run"] = erasure.subject_hash(salt, run)
    storage.put(layout.deny_key(plan.deny_hash), json.dumps(entry, sort_keys=True).encode())
    deny_after = erasure.deny_digest(storage)
    step("deny list updated")
    # 2. the raw layers
    for key, body in plan.redact.items():
        storage.put(key, body)
    for key in plan.delete:
        storage.delete(key)
    step(f"{len(plan.redact)} objects redacted, {len(plan.delete)} deleted")
    _forget_mentions(storage, plan, pii_salt, now)
    # 3. the tables, day by day, committed like the ETL's
    deleted = set(plan.delete)
    files_by_day: dict[date, list[str]] = {}
    for key in plan.rows:
        if layout.is_import_file(key):
            _rewrite(storage, key, *_filtered(storage, key, match, plan, deleted))
        elif (day := layout.day_of(key)) is not None:
            files_by_day.setdefault(day, []).append(key)
    deny = (deny_before, deny_after)
    for day in sorted(plan.days - plan.rerun):
        record = etl.read_commit(storage, day)
        files: dict[str, bytes] = {}
        rows: dict[str, int] = {}
        for key in files_by_day.get(day, []):
            table = key.split("/")[1]
            if key == layout.part_key(table, day) and table in layout.TABLES:
                files[table], rows[table] = _filtered(storage, key, match, plan, deleted)
            else:  # another table's file (media): its own atomic rewrite
                _rewrite(storage, key, *_filtered(storage, key, match, plan, deleted))
        _filter_versions(storage, day, plan, (before.get(day, ""), after.get(day, "")))
        if record is None:
            plan.rerun.add(day)  # no record to restamp: the ETL writes the day and its record
            continue
        new = _restamp(record, day, before, after, deny)
        if files:
            new["tables"] = {**new.get("tables", {}),
                             **{t: {"key": layout.part_key(t, day), "size": len(b)} for t, b in files.items()}}
            new["rows"] = {**new.get("rows", {}), **rows}
            etl.commit_day(storage, day, files, new, out.warnings)
        elif new != record:
            storage.put(layout.commit_key(day), json.dumps(new, indent=1, sort_keys=True).encode())
    step(f"{len(plan.days)} days of tables rewritten")
    # 4. every other day's record: the new deny list (their rows cannot be the subject's: the scan found none)
    for key in list(storage.keys(layout.ETL_ROOT)):
        if not key.endswith("/commit.json") or (day := layout.day_of(key)) is None or day in plan.days:
            continue
        record = etl.read_commit(storage, day)
        if record is not None and (new := _restamp(record, day, before, after, deny)) != record:
            storage.put(key, json.dumps(new, indent=1, sort_keys=True).encode())
    # 5. days the ETL must write: a redaction that changed others' rows, a day without a record, and whatever an
    #    earlier killed run left behind
    deny_list = erasure.load(storage, pii_salt)
    days = sorted({d for d in (layout.day_of(k) for k in storage.keys(layout.ETL_ROOT)) if d and d < today}
                  | {d for d in plan.rerun if d < today})
    behind = [d for d in days
              if d in plan.rerun or etl.behind_reason(storage, d, pii_salt, window=window, listings=now)]
    for day in behind:
        result = etl.run_day(storage, day, pii_salt, window=window, deny=deny_list)
        out.reran.append(day.isoformat())
        out.warnings += result.warnings
    step(f"{len(behind)} days re-run by the ETL")
    # 6. the audit record: keys and counts, the salted hash; never the identifier or a name
    record = {"at": stamp.isoformat(timespec="seconds"), "kind": subject.kind, "subject": plan.deny_hash,
              "salt": mark, "counts": plan.counts(), "deleted": plan.delete, "redacted": sorted(plan.redact),
              "tables": {k: v["rows"] for k, v in sorted(plan.rows.items())}, "days_rerun": out.reran,
              "scanned": plan.scanned, "read": plan.read}
    out.record_key = layout.erasure_record_key(stamp.strftime("%Y%m%dT%H%M%S%fZ"), plan.deny_hash)
    storage.put(out.record_key, json.dumps(record, indent=1, sort_keys=True).encode())
    return out


def affected_summary(plan: Plan) -> list[dict[str, Any]]:
    """The plan as rows for `ui.print_table`: what goes, per layer."""
    return [{"what": k, "count": v} for k, v in sorted(plan.counts().items())]


def day_range(days: Iterable[date]) -> str:
    ds = sorted(days)
    return f"{ds[0]} .. {ds[-1]}" if ds else "none"


def command(storage: Storage, subject: Subject, pii_salt: str | None, window: int, *, dry_run: bool, yes: bool,
            confirm: Callable[[str], str] | None) -> int:
    """The verb: plan, show, confirm, apply, report. `confirm` is `input` on a terminal, None otherwise."""
    import sys

    from chatlake import ui

    with ui.progress_bar("scanning the lake", unit="objects") as advance:
        plan = make_plan(storage, subject, pii_salt, advance)
    title = (f"forget {KINDS[subject.kind]} on {storage.url}: {plan.scanned} objects scanned ({plan.read} read), days "
             f"{day_range(plan.days)}")
    ui.print_table(affected_summary(plan) or [{"what": "nothing found", "count": 0}], ["what", "count"], title=title)
    if dry_run:
        print("dry run: nothing was changed")
        return 0
    if plan.empty:
        print("nothing of this identifier is in the lake; it is added to the deny list so that it is never stored "
              "in the tables")
    if not yes:
        if confirm is None:
            raise ForgetError("forget erases data for good: run it in a terminal to confirm, or add --yes")
        if confirm("erase all of this for good? type yes: ").strip().lower() != "yes":
            print("nothing was changed", file=sys.stderr)
            return 1
    out = apply(storage, plan, pii_salt, window, on_step=lambda text: print(f"  {text}", file=sys.stderr))
    for warning in out.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"done: audit record {out.record_key}")
    return 0
