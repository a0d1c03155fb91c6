"""WhatsApp Cloud API webhook deliveries -> `messages` and `statuses` rows (contract sections 3 and 3.1).

`parse` is a pure function of one decoded POST body: no I/O, no clock, no PII hashing and no dedupe (the
ETL does those). The body comes from outside, so every field is type-checked where it is read (with the readers
of `values`, shared with the Telegram parser; a plain `dict.get` where a typed reader takes the value, since the
reader already turns every absent value into None) and nothing here raises: what cannot become a row becomes a sentence
in `problems` (one `rejects` row each). It runs ~100k times per ETL run, so it walks the payload once, copies
nothing and builds error text only on error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.schema import Message, Parsed, Status
from chalicelib.values import EMPTY, digits, get, int64, mapping, millis, string

SOURCE = "whatsapp"
OBJECT = "whatsapp_business_account"
_MISSING = object()
# Content types whose object carries a caption (the text a person typed under the media).
_CAPTION_TYPES = frozenset({"image", "video", "document", "audio", "sticker"})
# Profile names of one change's `contacts[]`: by wa_id, and by BSUID (`user_id`) for users without a phone number.
Names = tuple[dict[str, str], dict[str, str]]


def parse(delivery: dict[str, Any], raw_key: str) -> Parsed:
    """Rows and problems of one WhatsApp delivery, whatever JSON object comes in. It does not raise; should a bug
    make it, `etl.parse_delivery` (the one catch-all) turns the crash into the delivery's one reject."""
    out = Parsed()
    _delivery(delivery, raw_key, out)
    return out


# --- WhatsApp's own values: ids, phone numbers, times -----------------------------------------------------------------


def _id(value: Any) -> str | None:
    """An identifier: a non-empty string, or an int64 a proxy may have sent unquoted (never a bool)."""
    if type(value) is str:
        return string(value)
    number = int64(value)
    return None if number is None else str(number)


def _phone(value: Any) -> str | None:
    """A wa_id / phone number as digits: the leading "+" some payloads carry is dropped, so ids join."""
    ident = _id(value)
    if ident is not None and ident[0] == "+":
        return ident[1:] or None
    return ident


def _millis(value: Any) -> int | None:
    """Milliseconds from Meta's Unix-seconds digit string (or a bare int), None when not a real time."""
    return millis(digits(value, 12) if type(value) is str else int64(value))


def _found(value: Any) -> str:
    """A short, safe description of an unexpected value for a problem sentence."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value[:80]) + ("…" if len(value) > 80 else "")
    if type(value) is int:
        return "a huge number" if int64(value) is None else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- the envelope --------------------------------------------------------------------------------------------------


def _delivery(delivery: Any, raw_key: str, out: Parsed) -> None:
    """Check `object` and `entry`, then read every entry."""
    if not isinstance(delivery, dict):
        out.problems.append(
            f"WhatsApp delivery is {_found(delivery)}, not a JSON object: only Meta webhook POST bodies "
            "belong under raw/source=whatsapp"
        )
        return
    kind = delivery.get("object", _MISSING)
    if kind != OBJECT:
        out.problems.append(
            f"WhatsApp delivery has object {_found(kind)}, not '{OBJECT}': check which Meta product posts to /whatsapp"
        )
        return
    entries = delivery.get("entry", _MISSING)
    if not isinstance(entries, list):
        what = "no 'entry'" if entries is _MISSING else f"an 'entry' that is {_found(entries)}, not a list"
        out.problems.append(
            f"WhatsApp delivery has {what}: nothing in it can be read; compare it with Meta's webhook format "
            "and check what posts to /whatsapp"
        )
        return
    for e, entry in enumerate(entries):
        _entry(entry, e, raw_key, out)


def _entry(entry: Any, e: int, raw_key: str, out: Parsed) -> None:
    """Dispatch each change on its `field`; fields other than messages and echoes are kept raw only."""
    if not isinstance(entry, dict):
        out.problems.append(f"WhatsApp delivery entry[{e}] is {_found(entry)}, not an object: it gave no rows")
        return
    changes = entry.get("changes", _MISSING)
    if not isinstance(changes, list):
        out.problems.append(
            f"WhatsApp delivery entry[{e}] has no 'changes' list (found {_found(changes)}): it gave no rows"
        )
        return
    for c, change in enumerate(changes):
        if not isinstance(change, dict):
            out.problems.append(
                f"WhatsApp delivery entry[{e}].changes[{c}] is {_found(change)}, not an object: it gave no rows"
            )
            continue
        field = change.get("field", _MISSING)
        if field == "messages" or field == "smb_message_echoes":
            _value(change.get("value", _MISSING), field, e, c, raw_key, out)
        elif not isinstance(field, str):
            out.problems.append(
                f"WhatsApp delivery entry[{e}].changes[{c}] has no 'field' (found {_found(field)}): it gave no rows; "
                "compare it with Meta's webhook format"
            )
        # Any other field (templates, account, calls, user preferences, history, ...): no row and no reject.


def _value(value: Any, field: str, e: int, c: int, raw_key: str, out: Parsed) -> None:
    """One `messages` or `smb_message_echoes` change: its messages, echoes and statuses."""
    if not isinstance(value, dict):
        out.problems.append(
            f"WhatsApp delivery entry[{e}].changes[{c}] (field '{field}') has no 'value' object "
            f"(found {_found(value)}): it gave no rows"
        )
        return
    metadata = mapping(value.get("metadata"))
    account = _id(metadata.get("phone_number_id"))
    if field == "messages":
        messages = _items(value, "messages", e, c, out)
        if messages:
            names = _names(value.get("contacts"))
            for i, msg in enumerate(messages):
                row = _inbound(msg, names, account, raw_key)
                _keep(row, "message", e, c, "messages", i, out)
        for i, item in enumerate(_items(value, "statuses", e, c, out)):
            _keep(_status(item, account, raw_key), "status", e, c, "statuses", i, out)
    else:
        echoes = _items(value, "message_echoes", e, c, out)
        if echoes:
            business = _phone(metadata.get("display_phone_number"))
            for i, msg in enumerate(echoes):
                _keep(_echo(msg, business, account, raw_key), "message echo", e, c, "message_echoes", i, out)
    # value.errors[] (and anything else in the value) give no row: the raw delivery keeps them.


def _items(value: Mapping[str, Any], key: str, e: int, c: int, out: Parsed) -> list[Any]:
    """The list under `key` (absent means none); anything else is reported once."""
    items = get(value, key)
    if items is None or isinstance(items, list):
        return items or []
    out.problems.append(
        f"WhatsApp delivery entry[{e}].changes[{c}].value.{key} is {_found(items)}, not a list: it gave no rows"
    )
    return []


def _keep(row: Message | Status | str, what: str, e: int, c: int, key: str, i: int, out: Parsed) -> None:
    """File a row in its table, or turn a reason into a problem sentence that says where the item was."""
    if isinstance(row, Message):
        out.messages.append(row)
    elif isinstance(row, Status):
        out.statuses.append(row)
    else:
        out.problems.append(
            f"WhatsApp {what} at entry[{e}].changes[{c}].value.{key}[{i}] {row}: it gave no row (the delivery's "
            "other items are unaffected); check what sent it, the raw delivery is kept for a re-run after a fix"
        )


# --- messages ------------------------------------------------------------------------------------------------------


def _names(contacts: Any) -> Names:
    """Profile names by wa_id and by BSUID (user_id): messages are matched to contacts by id, never by position."""
    by_wa: dict[str, str] = {}
    by_user: dict[str, str] = {}
    if not isinstance(contacts, list):
        return by_wa, by_user
    for contact in contacts:
        contact = mapping(contact)
        name = string(mapping(contact.get("profile")).get("name"))
        if name is None:
            continue
        wa_id = _phone(contact.get("wa_id"))
        if wa_id is not None:
            by_wa.setdefault(wa_id, name)
        user_id = _id(contact.get("user_id"))
        if user_id is not None:
            by_user.setdefault(user_id, name)
    return by_wa, by_user


def _inbound(msg: Any, names: Names, account: str | None, raw_key: str) -> Message | str:
    """A message a user sent: the chat and the sender are the user (wa_id, else BSUID)."""
    if not isinstance(msg, dict):
        return f"is {_found(msg)}, not an object"
    phone = _phone(msg.get("from"))
    user_id = _id(msg.get("from_user_id"))
    name = names[0].get(phone) if phone is not None else None
    if name is None and user_id is not None:
        name = names[1].get(user_id)
    chat = phone or user_id
    return _row(msg, chat, "'from' or 'from_user_id'", chat, name, phone, "in", account, raw_key)


def _echo(msg: Any, business: str | None, account: str | None, raw_key: str) -> Message | str:
    """A message the business sent from the WhatsApp Business app: the chat is the customer, the sender the business."""
    if not isinstance(msg, dict):
        return f"is {_found(msg)}, not an object"
    chat = _phone(msg.get("to")) or _id(msg.get("to_user_id"))
    sender = business or _phone(msg.get("from"))
    return _row(msg, chat, "'to' or 'to_user_id'", sender, None, sender, "out", account, raw_key)


def _row(
    msg: Mapping[str, Any],
    chat: str | None,
    chat_keys: str,
    sender_id: str | None,
    sender_name: str | None,
    sender_phone: str | None,
    direction: str,
    account: str | None,
    raw_key: str,
) -> Message | str:
    """The `messages` row of one message object (inbound or echo), or why there is none."""
    event_id = message_id = _id(msg.get("id"))
    at = _millis(msg.get("timestamp"))
    kind = string(msg.get("type")) or "unknown"
    missing = []
    if event_id is None:
        missing.append("no 'id'")
    if at is None:
        stamp = get(msg, "timestamp")
        missing.append(
            "no 'timestamp'" if stamp is None else f"a 'timestamp' that is not Unix seconds ({_found(stamp)})"
        )
    if chat is None:
        missing.append(f"no {chat_keys}")
    body: Mapping[str, Any] = msg
    content = kind
    edited_at = None
    if kind == "edit" or kind == "revoke":  # a later version of another message: the row is that message's
        event = mapping(msg.get(kind))
        message_id = _id(event.get("original_message_id"))
        if message_id is None:
            missing.append(f"no '{kind}.original_message_id'")
        edited_at = at
        if kind == "edit":
            body = mapping(event.get("message"))
            content = string(body.get("type")) or kind
    if missing or message_id is None or at is None or chat is None:
        label = f"(id {_found(event_id)}) " if event_id is not None else ""
        return f"{label}has {' and '.join(missing)}"
    if kind == "revoke":
        text = media_id = mime = reply = None
    else:
        text, media_id, mime, reply = _content(body, content)
        if reply is None and body is not msg:  # an edit's context may sit on the event instead of the new version
            reply = _id(mapping(msg.get("context")).get("id"))
    return Message(  # positional, in the fields' order: a call with 18 keywords costs four times as much
        SOURCE,  # source
        message_id,
        at,  # sent_at
        chat,  # chat_id
        "private",  # chat_type
        content,  # message_type
        raw_key,
        edited_at,
        None,  # chat_title
        sender_id,
        sender_name,
        None,  # sender_username
        sender_phone,
        text,
        media_id,
        mime,  # media_mime_type
        reply,  # reply_to_message_id
        edited_at is not None,  # is_edit
        direction,
        account,  # account_id
    )


def _content(body: Mapping[str, Any], kind: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(text, media id, MIME type, replied-to id) of a message whose content object sits under its type name."""
    obj = mapping(body.get(kind))
    reply = _id(mapping(body.get("context")).get("id"))
    # Any content object with an `id` is media (image, audio, video, document, sticker, and future kinds).
    media_id = _id(obj.get("id"))
    mime = string(obj.get("mime_type"))
    if kind == "text" or kind == "system":
        text = string(obj.get("body"))
    elif kind in _CAPTION_TYPES:
        text = string(obj.get("caption"))  # never the file name
    elif kind == "interactive":
        text = string(mapping(obj.get("button_reply")).get("title"))
        text = text or string(mapping(obj.get("list_reply")).get("title"))
    elif kind == "button" or kind == "order":
        text = string(obj.get("text"))  # a button's label, never its payload
    elif kind == "reaction":
        text = string(obj.get("emoji"))  # a removed reaction has none: null
        reply = _id(obj.get("message_id")) or reply
    else:  # location, contacts, unsupported, future kinds: nothing a person typed
        text = None
    return text, media_id, mime, reply


# --- statuses ------------------------------------------------------------------------------------------------------


def _status(item: Any, account: str | None, raw_key: str) -> Status | str:
    """One delivery status of a message the business sent, or why there is none."""
    if not isinstance(item, dict):
        return f"is {_found(item)}, not an object"
    message_id = _id(item.get("id"))
    status = string(item.get("status"))
    at = _millis(item.get("timestamp"))
    if message_id is None or status is None or at is None:
        missing = [f"'{key}'" for key, ok in (("id", message_id), ("status", status), ("timestamp", at)) if ok is None]
        return f"has no usable {' or '.join(missing)}"
    errors = item.get("errors")
    error = mapping(errors[0]) if isinstance(errors, list) and errors else EMPTY
    return Status(  # positional, in the fields' order (see `_row`)
        message_id,
        status,
        at,  # status_at
        raw_key,
        _phone(item.get("recipient_id")) or _id(item.get("recipient_user_id")),  # recipient_id
        _code(error.get("code")),  # error_code
        string(error.get("title")) or string(error.get("message")),  # error_title
        string(mapping(item.get("pricing")).get("category")),  # pricing_category
        account,  # account_id
    )


def _code(value: Any) -> int | None:
    """A Graph API error code: an int64 (or its digit string), never a bool."""
    return digits(value, 18) if type(value) is str else int64(value)
