"""`PII_MODE=hash`: every identifier of a person becomes a salted SHA-256, stable for one salt so joins
still work; names are dropped. Applied by the ETL to parsed rows, never to the raw layer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import lru_cache

from chalicelib.schema import Message, Status


def hasher(salt: str) -> Callable[[str | None], str | None]:
    """A cached salted SHA-256 of an identifier (None stays None)."""
    prefix = salt.encode() + b"\x00"

    @lru_cache(maxsize=1 << 16)
    def digest(value: str | None) -> str | None:
        if value is None:
            return None
        return hashlib.sha256(prefix + value.encode("utf-8", "surrogatepass")).hexdigest()

    return digest


def _hash_chat_part(message_id: str | None, h: Callable[[str | None], str | None]) -> str | None:
    """`"<chat_id>:<message_id>"` → `"<hash of chat_id>:<message_id>"` (Telegram ids of private chats)."""
    if message_id is None or ":" not in message_id:
        return message_id
    chat, _, rest = message_id.rpartition(":")
    return f"{h(chat)}:{rest}"


def hash_rows(messages: Iterable[Message], statuses: Iterable[Status], salt: str) -> None:
    """Hash the identifiers of people in place."""
    h = hasher(salt)
    for m in messages:
        m.sender_id = h(m.sender_id)
        m.sender_phone = h(m.sender_phone)
        m.sender_username = h(m.sender_username)
        m.sender_name = None
        if m.chat_type == "private":
            m.chat_id = h(m.chat_id)  # type: ignore[assignment]
            if m.source == "telegram":
                m.message_id = _hash_chat_part(m.message_id, h)  # type: ignore[assignment]
                m.reply_to_message_id = _hash_chat_part(m.reply_to_message_id, h)
    for s in statuses:
        s.recipient_id = h(s.recipient_id)
