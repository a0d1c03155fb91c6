"""The tables' columns (contract section 3), fixed in one place: rows, Parquet schema and Athena DDL.

Timestamps travel as integer milliseconds since the Unix epoch (UTC) until the Parquet writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class Message:
    """One version of one chat message (the original, or an edit). The parsers build rows positionally (a call
    with keywords costs four times as much, 100k times a run): the fields' order is part of their code."""

    source: str
    message_id: str
    sent_at: int  # ms since epoch, UTC
    chat_id: str
    chat_type: str
    message_type: str
    raw_key: str
    edited_at: int | None = None
    chat_title: str | None = None
    sender_id: str | None = None
    sender_name: str | None = None
    sender_username: str | None = None
    sender_phone: str | None = None
    text: str | None = None
    media_id: str | None = None
    media_mime_type: str | None = None
    reply_to_message_id: str | None = None
    is_edit: bool = False
    direction: str = "in"
    account_id: str | None = None


@dataclass(slots=True)
class Status:
    """A WhatsApp delivery status of a message the business sent (built positionally too: see `Message`)."""

    message_id: str
    status: str
    status_at: int  # ms since epoch, UTC
    raw_key: str
    recipient_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    pricing_category: str | None = None
    account_id: str | None = None


@dataclass(slots=True)
class Reject:
    source: str
    raw_key: str
    reason: str


@dataclass(slots=True)
class MediaRow:
    """One media file of a message (issue 12): where its bytes are in the lake, or why they are not (yet)."""

    source: str
    media_id: str
    message_id: str
    message_type: str
    status: str  # stored, pending, failed, too_large, expired, disabled
    mime_type: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    media_key: str | None = None  # null until stored
    fetched_at: int | None = None  # ms since epoch, UTC: the last attempt
    error: str | None = None
    attempts: int = 0  # fetch attempts so far: the backoff of the retries
    raw_key: str | None = None  # the raw delivery the media id was found in: its door (webhook, whatsapp_eum)


@dataclass(slots=True)
class Parsed:
    """What one delivery gives: rows, and the sentences saying what could not be read."""

    messages: list[Message] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# Column name -> logical type, in table order. `dt` (the partition) is not a column of the files.
# Logical types: string, timestamp (ms, UTC), bool, int.
COLUMNS: dict[str, dict[str, str]] = {
    "messages": {
        "source": "string",
        "message_id": "string",
        "sent_at": "timestamp",
        "edited_at": "timestamp",
        "chat_id": "string",
        "chat_type": "string",
        "chat_title": "string",
        "sender_id": "string",
        "sender_name": "string",
        "sender_username": "string",
        "sender_phone": "string",
        "message_type": "string",
        "text": "string",
        "media_id": "string",
        "media_mime_type": "string",
        "reply_to_message_id": "string",
        "is_edit": "bool",
        "direction": "string",
        "account_id": "string",
        "raw_key": "string",
    },
    "statuses": {
        "message_id": "string",
        "status": "string",
        "status_at": "timestamp",
        "recipient_id": "string",
        "error_code": "int",
        "error_title": "string",
        "pricing_category": "string",
        "account_id": "string",
        "raw_key": "string",
    },
    "rejects": {
        "source": "string",
        "raw_key": "string",
        "reason": "string",
    },
    "media": {
        "source": "string",
        "media_id": "string",
        "message_id": "string",
        "message_type": "string",
        "mime_type": "string",
        "bytes": "int",
        "sha256": "string",
        "media_key": "string",
        "fetched_at": "timestamp",
        "status": "string",
        "error": "string",
        "attempts": "int",
        "raw_key": "string",
    },
}
ROW_TYPES: dict[str, type] = {"messages": Message, "statuses": Status, "rejects": Reject, "media": MediaRow}
ATHENA_TYPES = {"string": "string", "timestamp": "timestamp", "bool": "boolean", "int": "bigint"}

assert all(set(COLUMNS[t]) == {f.name for f in fields(ROW_TYPES[t])} for t in COLUMNS)


def arrow_schema(table: str) -> Any:
    """The Parquet schema of a table (pyarrow is imported here, never on the webhook path)."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "bool": pa.bool_(),
        "int": pa.int64(),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS[table].items()])


#: The DuckDB type of each schema kind: the empty views over a table with no files yet are typed as Athena's.
DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "bool": "BOOLEAN", "int": "BIGINT"}
