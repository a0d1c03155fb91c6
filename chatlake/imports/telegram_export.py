"""Telegram Desktop "Export chat history" (JSON, `result.json`) -> `messages` rows. Pure: a decoded document in,
rows out (no I/O, no clock).

Two shapes: a single chat (`{"name", "type", "id", "messages": [...]}`) and a full export (`{"chats": {"list":
[...]}, "left_chats": {"list": [...]}, "personal_information": {...}, ...}`). Ids are turned into the Bot API's, so
rows join the webhook's: a supergroup's or channel's export `id` lacks the Bot API's `-100` prefix, a basic group's
its minus sign; `from_id` is `user<N>`, `channel<N>` or `chat<N>`. Types take the webhook path's names (`voice`,
`video`, `video_note`, `document`, `service`, ...). Every value comes from a file a person hands over, so each is
type-checked and a wrong one is treated as absent; a message that cannot become a row is reported, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from chalicelib.schema import Message
from chalicelib.values import digits, millis
from chatlake.imports.rows import Row, as_messages

SOURCE = "telegram"

CHAT_TYPES = {
    "personal_chat": "private", "bot_chat": "private", "saved_messages": "private", "private_group": "group",
    "public_group": "group", "private_supergroup": "supergroup", "public_supergroup": "supergroup",
    "private_channel": "channel", "public_channel": "channel",
}
# `media_type` of a `file` -> the Bot API field (the webhook path's message_type).
MEDIA_TYPES = {
    "voice_message": "voice", "video_file": "video", "video_message": "video_note", "sticker": "sticker",
    "animation": "animation", "audio_file": "audio",
}
# Content fields of an export message -> message_type, checked in this order (the specific before the generic).
CONTENT = (("poll", "poll"), ("contact_information", "contact"), ("dice", "dice"), ("game_title", "game"),
           ("invoice_information", "invoice"), ("giveaway_information", "giveaway"), ("todo_list", "checklist"))
_CONTENT_KEYS = frozenset({"photo", "file", "media_type", "location_information", *(name for name, _ in CONTENT)})
NOT_INCLUDED = "(File not included."  # what the export writes instead of a path when media were not exported


@dataclass
class Export:
    """What one export gives: rows, the chats they are from, and the messages that could not become rows."""

    rows: list[Row] = field(default_factory=list)  # Message values (imports.rows)
    chats: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # a sentence each, naming the chat and message id

    @property
    def messages(self) -> list[Message]:
        return as_messages(self.rows)


class NotAnExport(ValueError):
    """The JSON is not a Telegram Desktop export (neither shape)."""


def chats_of(document: Any) -> list[dict[str, Any]]:
    """The chats of either shape, in file order."""
    if not isinstance(document, dict):
        raise NotAnExport("the file is JSON but not an object, so not a Telegram Desktop export (result.json)")
    if isinstance(document.get("messages"), list):
        return [document]
    chats = []
    for part in ("chats", "left_chats"):
        listing = document.get(part)
        if isinstance(listing, dict) and isinstance(listing.get("list"), list):
            chats += [c for c in listing["list"] if isinstance(c, dict) and isinstance(c.get("messages"), list)]
    if not chats and not any(isinstance(document.get(p), dict) for p in ("chats", "left_chats")):
        raise NotAnExport("the file has neither `messages` (a single-chat export) nor `chats` (a full export): "
                          "is it Telegram Desktop's result.json, exported as machine-readable JSON?")
    return chats


def bot_api_chat_id(export_id: int, chat_type: str) -> int:
    """The Bot API's id of an exported chat: -100<id> for supergroups and channels, -<id> for basic groups."""
    if export_id < 0:
        return export_id  # already a Bot API id (some tools write them so)
    if chat_type in ("supergroup", "channel"):
        return int(f"-100{export_id}")
    return -export_id if chat_type == "group" else export_id


def bot_api_peer_id(value: Any) -> str | None:
    """`user123` -> "123", `channel123` -> "-100123", `chat123` -> "-123" (the Bot API's sender ids)."""
    if not isinstance(value, str):
        return str(value) if type(value) is int else None
    for prefix, form in (("user", "{}"), ("channel", "-100{}"), ("chat", "-{}")):
        number = value[len(prefix):]
        if value.startswith(prefix) and number.isascii() and number.isdigit():
            return form.format(number)
    return None


def plain_text(value: Any) -> str | None:
    """`text` as a string, or as a list of strings and entity objects (`{"type": "bold", "text": "..."}`)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        parts = [p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None for p in value]
        joined = "".join(p for p in parts if isinstance(p, str))
        return joined or None
    return None


def parse(document: Any, raw_key: str, zone: tzinfo, *, me: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> Export:
    """The rows of an export. `zone`: the exporting computer's time zone, for `date` where `date_unixtime` is
    missing; `me`: a sender name or `user<N>` id whose messages are `direction` out (a full export names its
    owner itself)."""
    out = Export()
    chats = chats_of(document)
    owner = None
    info = document.get("personal_information") if isinstance(document, dict) else None
    if isinstance(info, dict) and isinstance(info.get("user_id"), int):
        owner = str(info["user_id"])
    total = sum(len(c["messages"]) for c in chats)
    done = 0
    for chat in chats:
        _chat_rows(chat, raw_key, zone, me, owner, out)
        done += len(chat["messages"])
        if progress is not None:
            progress(done, total)
    return out


def _chat_rows(chat: dict[str, Any], raw_key: str, zone: tzinfo, me: str | None, owner: str | None,
               out: Export) -> None:
    """Append the chat's rows to `out`. One pass, the fields read once each: an export can hold millions."""
    name = chat.get("name") if isinstance(chat.get("name"), str) else None
    kind = chat.get("type")
    chat_type = CHAT_TYPES.get(kind, "unknown") if isinstance(kind, str) else "private" if kind is None else "unknown"
    export_id = chat.get("id")
    label = f"chat {name or export_id!r}"
    if type(export_id) is not int:
        out.unreadable.append(f"{label}: no integer `id`, so its {len(chat['messages'])} messages give no rows")
        return
    chat_id = str(bot_api_chat_id(export_id, chat_type))
    out.chats.append(name or chat_id)
    title = None if chat_type == "private" else name
    times: dict[str, int | None] = {}
    peers: dict[Any, str | None] = {}
    append = out.rows.append
    content_keys = _CONTENT_KEYS.isdisjoint
    mine = me is not None or owner is not None  # else no message is the exporter's
    for msg in chat["messages"]:
        if not isinstance(msg, dict):
            out.unreadable.append(f"{label}: an entry of `messages` is not an object")
            continue
        number = msg.get("id")
        exact = msg.get("date_unixtime")
        if type(exact) is str and exact.isdecimal() and 0 < len(exact) <= 11:  # "²" is a digit, not decimal
            sent_at: int | None = int(exact) * 1000  # 11 digits at most: a time the tables hold (before 5138)
        else:
            sent_at = _millis(msg, "date", zone, times)
        if type(number) is not int or sent_at is None:
            out.unreadable.append(f"{label}, message {number!r}: no integer `id` or no readable `date`")
            continue
        peer_value = msg.get("from_id") or msg.get("actor_id")
        if isinstance(peer_value, str):
            sender_id = peers.get(peer_value, False)
            if sender_id is False:
                sender_id = peers[peer_value] = bot_api_peer_id(peer_value)
        else:
            sender_id = None
        sender_name = msg["from"] if "from" in msg else msg.get("actor")
        if type(sender_name) is not str or not sender_name:
            sender_name = None
        if msg.get("type") == "service":
            message_type, media_id, mime = "service", None, None
            text = None
        else:
            message_type, media_id, mime = ("text", None, None) if content_keys(msg) else _kind(msg)
            text = msg.get("text")
            if type(text) is not str or not text:
                text = plain_text(text)
        is_me = mine and ((me is not None and me in (sender_name, msg.get("from_id"), sender_id)) or (
            owner is not None and sender_id == owner))
        reply = msg.get("reply_to_message_id")
        reply_to = None
        if type(reply) is int:
            peer = msg.get("reply_to_peer_id")
            reply_chat = chat_id if peer is None else (bot_api_peer_id(peer) or "")
            if reply_chat:
                reply_to = f"{reply_chat}:{reply}"
        # a row in Message field order: source, message_id, sent_at, chat_id, chat_type, message_type, raw_key,
        # edited_at, chat_title, sender_id, sender_name, sender_username, sender_phone, text, media_id,
        # media_mime_type, reply_to_message_id, is_edit, direction, account_id
        message_id = f"{chat_id}:{number}"
        direction = "out" if is_me else "in"
        append((SOURCE, message_id, sent_at, chat_id, chat_type, message_type, raw_key, None, title, sender_id,
                sender_name, None, None, text, media_id, mime, reply_to, False, direction, None))
        if "edited_unixtime" in msg or "edited" in msg:
            edited_at = _millis(msg, "edited", zone, times)
            if edited_at is not None:  # the export holds the last version only: the original, and that version
                append((SOURCE, message_id, sent_at, chat_id, chat_type, message_type, raw_key, edited_at, title,
                        sender_id, sender_name, None, None, text, media_id, mime, reply_to, True, direction, None))


def _kind(msg: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(message_type, media_id, MIME type). The media id is the file's path inside the export (there is no Bot
    API file_id), null when the media were not exported."""
    if msg.get("type") == "service":
        return "service", None, None
    if _CONTENT_KEYS.isdisjoint(msg):
        return "text", None, None
    mime = msg.get("mime_type") if isinstance(msg.get("mime_type"), str) else None
    photo = msg.get("photo")
    if isinstance(photo, str):
        return "photo", _path(photo), mime
    path = msg.get("file")
    if isinstance(path, str) or "media_type" in msg:
        media_type = msg.get("media_type")
        kind = MEDIA_TYPES.get(media_type, "document") if isinstance(media_type, str) else "document"
        return kind, _path(path), mime
    location = msg.get("location_information")
    if isinstance(location, dict):
        return ("venue" if msg.get("place_name") or msg.get("address") else "location"), None, None
    for name, kind in CONTENT:
        if msg.get(name) is not None:
            return kind, None, None
    return "text", None, None


def _path(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not value.startswith(NOT_INCLUDED) else None


def _millis(msg: dict[str, Any], name: str, zone: tzinfo, cache: dict[str, int | None]) -> int | None:
    """`<name>_unixtime` (exact) where present, else `<name>` (local time of the exporting computer) in `zone`."""
    exact = msg.get(f"{name}_unixtime")
    exact_ms = millis(exact if type(exact) is int else digits(exact, 12))
    if exact_ms is not None:
        return exact_ms
    local = msg.get(name)
    if not isinstance(local, str):
        return None
    if local in cache:
        return cache[local]
    try:
        naive = datetime.fromisoformat(local)
    except ValueError:
        cache[local] = None
        return None
    try:
        if naive.tzinfo is not None:
            naive = naive.astimezone(UTC).replace(tzinfo=None)
        else:
            naive -= naive.replace(tzinfo=zone).utcoffset() or timedelta(0)
    except OverflowError:  # a time at the very edge of the calendar
        naive = datetime.min
    cache[local] = value = millis(int((naive - datetime(1970, 1, 1)).total_seconds()))
    return value
