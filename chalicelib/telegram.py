"""Telegram Bot API `Update` objects -> `messages` rows (contract section 3.1). Pure: no I/O, no clock.

The ETL calls `parse` once per raw delivery (about 100k times a run), so this is plain dict look-ups: no
regexes, no copies, no recursion. The raw layer keeps any authenticated JSON object, so every field is
type-checked here and a wrong type is treated as absent: `parse` does not raise, whatever it is given (should a
bug make it, `etl.parse_delivery` turns the crash into the delivery's one reject).

Fields are read through `values.get`, which treats `false`, `null`, `""`, `[]` and `{}` as absent: client libraries
that re-serialise updates (python-telegram-bot's `Update.to_json()`) write every optional flag as `false`, and
some write nulls, so such a value must mean exactly what a missing field means (a `0` is a real value). The
readers in `values` are the WhatsApp parser's too, so both read a value the same way. Where a typed reader
(`string`, `integer`, `mapping`) takes the value, a plain `dict.get` does: the reader already turns every such
absent value into None, and this skips a Python call per field (the parse is most of the ETL's CPU).
"""

from __future__ import annotations

from typing import Any

from chalicelib.schema import Message, Parsed
from chalicelib.values import clean, get, integer, mapping, millis, present, string

SOURCE = "telegram"

# Update fields whose value is a Message, and whether that message is a later version of one (an edit).
# `guest_message` (Bot API 10.0) is a message a user sent to the bot in a chat the bot is a guest of.
MESSAGE_KINDS: dict[str, bool] = {
    "message": False,
    "edited_message": True,
    "channel_post": False,
    "edited_channel_post": True,
    "business_message": False,
    "edited_business_message": True,
    "guest_message": False,
}

# Update fields that are not chat messages: known, so they give no row and no reject.
OTHER_KINDS = frozenset(
    {
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
        "message_reaction",
        "message_reaction_count",
        "business_connection",
        "deleted_business_messages",
        "managed_bot",
    }
)

# Message fields that describe a message rather than being its content. A field that is in none of the
# sets below is taken as a content kind Telegram added after this list (its name becomes message_type).
METADATA_FIELDS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "direct_messages_topic",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "sender_tag",
        "date",
        "guest_query_id",
        "business_connection_id",
        "chat",
        "forward_origin",
        "is_topic_message",
        "is_automatic_forward",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "reply_to_checklist_task_id",
        "reply_to_poll_option_id",
        "via_bot",
        "guest_bot_caller_user",
        "guest_bot_caller_chat",
        "edit_date",
        "has_protected_content",
        "is_from_offline",
        "is_paid_post",
        "media_group_id",
        "author_signature",
        "paid_star_count",
        "entities",
        "link_preview_options",
        "suggested_post_info",
        "effect_id",
        "caption",
        "caption_entities",
        "show_caption_above_media",
        "has_media_spoiler",
        "reply_markup",
        # Before Bot API 7.0 a forward carried these instead of forward_origin.
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
    }
)

# Content fields: the message_type is the field's own name.
CONTENT_FIELDS = frozenset(
    {
        "text",
        "animation",
        "audio",
        "document",
        "paid_media",
        "photo",
        "live_photo",
        "sticker",
        "story",
        "video",
        "video_note",
        "voice",
        "checklist",
        "contact",
        "dice",
        "game",
        "poll",
        "venue",
        "location",
        "invoice",
        "giveaway",
        "giveaway_winners",
    }
)

# For backward compatibility the Bot API also sets `document` with `animation` and `location` with `venue`:
# these two only name the message when the specific field is absent.
GENERIC_FIELDS = frozenset({"document", "location"})

# Service messages (something happened in the chat; nobody wrote anything): message_type "service".
SERVICE_FIELDS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        # Undocumented duplicates Telegram still sends next to the two above.
        "new_chat_member",
        "new_chat_participant",
        "left_chat_participant",
        "chat_owner_left",
        "chat_owner_changed",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "message_auto_delete_timer_changed",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "successful_payment",
        "refunded_payment",
        "users_shared",
        "user_shared",
        "chat_shared",
        "gift",
        "unique_gift",
        "gift_upgrade_sent",
        "connected_website",
        "write_access_allowed",
        "passport_data",
        "proximity_alert_triggered",
        "boost_added",
        "chat_background_set",
        "checklist_tasks_done",
        "checklist_tasks_added",
        "direct_message_price_changed",
        "paid_message_price_changed",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "giveaway_created",
        "giveaway_completed",
        "managed_bot_created",
        "poll_option_added",
        "poll_option_deleted",
        "suggested_post_approved",
        "suggested_post_approval_failed",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
        "web_app_data",
    }
)

# How strongly a known field names the message (lower wins; ties go to the smaller name), so that neither key order
# nor the Bot API's backward-compatible duplicates (`document` with `animation`, `location` with `venue`) decide.
_SERVICE_RANK = 3
_NO_RANK = _SERVICE_RANK + 1
_RANK: dict[str, int] = {name: _SERVICE_RANK for name in SERVICE_FIELDS} | {
    name: 2 if name == "text" else 1 if name in GENERIC_FIELDS else 0 for name in CONTENT_FIELDS
}

# The falsy JSON values that are values (`values.present`): `not v and type(v) not in _VALUES` means absent.
_VALUES = (int, float)
_REPLAY = "the raw delivery is kept and can be replayed"
_NOT_FROM_TELEGRAM = "Telegram always sends it, so check what posts to /telegram (the raw delivery is kept)"
_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def parse(update: dict[str, Any], raw_key: str) -> Parsed:
    """The rows of one Telegram update, and a sentence for each part that cannot become a row."""
    out = Parsed()
    if not isinstance(update, dict):
        out.problems.append(
            f"Telegram delivery is {_json_type(update)}, not a JSON object: "
            "this is not a Bot API update; check what posts to /telegram"
        )
        return out
    update_id = integer(update.get("update_id"))
    if update_id is None:
        out.problems.append(_no_update_id(update))
        return out

    known = False
    for key, value in update.items():
        if key == "update_id" or (not value and type(value) not in _VALUES):  # absent: see `values.present`
            continue
        is_edit = MESSAGE_KINDS.get(key)
        if is_edit is None:
            if key in OTHER_KINDS:
                known = True
                continue
            if not _looks_like_message(value):
                continue
            # A message under a field this list does not know yet (a new update kind): keep it as a row.
            is_edit = key.startswith("edited_")
        known = True
        _add_message(out, update_id, key, value, is_edit, raw_key)

    if not known:
        out.problems.append(_unknown_kind(update_id, update))
    return out


def _add_message(out: Parsed, update_id: int, kind: str, msg: Any, is_edit: bool, raw_key: str) -> None:
    """Append the row of one update-level message, or the sentence saying why it cannot be one."""
    if not isinstance(msg, dict):
        out.problems.append(
            f"Telegram update {update_id}: its {_clip(kind)} is {_json_type(msg)}, not a message object, "
            f"so it gives no row; {_NOT_FROM_TELEGRAM}"
        )
        return
    chat = mapping(msg.get("chat"))
    chat_id = integer(chat.get("id"))
    sent_at = millis(integer(msg.get("date")))
    message_id = integer(msg.get("message_id"))
    if chat_id is None or sent_at is None or message_id is None:
        missing = [
            what
            for what, bad in (
                ("chat (an object with an integer id)", chat_id is None),
                ("date (positive Unix seconds)", sent_at is None),
                ("message_id (an integer)", message_id is None),
            )
            if bad
        ]
        out.problems.append(
            f"Telegram update {update_id}: its {_clip(kind)} has no usable {' or '.join(missing)}, "
            f"so it gives no row; {_NOT_FROM_TELEGRAM}"
        )
        return

    chat_type = string(chat.get("type")) or ("private" if chat_id > 0 else "unknown")
    sender_id, sender_name, sender_username = _sender(msg)
    message_type, content = _kind(msg)
    media_id, media_mime_type = (None, None) if content is None else _media(message_type, content)
    edited_at = None
    if is_edit:
        # An edit without a usable edit_date still gets a time distinct from the original's null.
        edited_at = millis(integer(msg.get("edit_date"))) or sent_at
    out.messages.append(
        Message(  # positional, in the fields' order: a call with 17 keywords costs four times as much
            SOURCE,  # source
            f"{chat_id}:{message_id}",  # message_id
            sent_at,
            str(chat_id),  # chat_id
            chat_type,
            message_type,
            raw_key,
            edited_at,
            None if chat_type == "private" else string(chat.get("title")),  # chat_title
            sender_id,
            sender_name,
            sender_username,
            None,  # sender_phone: Telegram gives none
            string(msg.get("text")) or string(msg.get("caption")),  # text
            media_id,
            media_mime_type,
            _reply_to(msg, chat_id),  # reply_to_message_id
            is_edit,
        )
    )


def _kind(msg: dict[str, Any]) -> tuple[str, Any]:
    """The message_type, and the content field's value when it is content (None for service messages).

    Known fields decide whatever their order, since JSON key order means nothing and libraries that
    re-serialise an update reorder it: a specific content field beats a generic one, which beats `text`,
    which beats a service field. Only when there is none does the first other field name the (new) kind,
    preferring one whose value is an object or array, as content is, so a metadata field Telegram adds
    later is not mistaken for content when a known kind is there.
    """
    best: str | None = None  # the known content or service field of the lowest rank so far
    best_rank = _NO_RANK
    new_object: str | None = None  # the first unknown field holding an object or array
    new_scalar: str | None = None  # the first unknown field holding anything else
    for key, value in msg.items():
        # `"group_chat_created": false` is no service: an absent value (`values.present`, inlined: a hot loop)
        if key in METADATA_FIELDS or (not value and type(value) not in _VALUES):
            continue
        rank = _RANK.get(key)
        if rank is not None:
            if (rank, key) < (best_rank, best or ""):
                best, best_rank = key, rank
        elif isinstance(value, (dict, list)):
            new_object = new_object or key
        else:
            new_scalar = new_scalar or key
    if best is not None:
        return ("service", None) if best_rank == _SERVICE_RANK else (best, msg[best])
    name = new_object or new_scalar
    if not name:
        return "unknown", None
    return clean(name), msg[name]


def _media(kind: str, content: Any) -> tuple[str | None, str | None]:
    """The file_id (the largest size of a photo) and MIME type of a content field, where it has them."""
    if kind == "photo":
        return _largest_photo(content), None
    if not isinstance(content, dict):
        return None, None
    return string(content.get("file_id")), string(content.get("mime_type"))


def _largest_photo(sizes: Any) -> str | None:
    """The file_id of the size with the most pixels; on a tie the later one (Telegram lists small to large)."""
    if not isinstance(sizes, list):
        return None
    best: str | None = None
    best_area = -1
    for size in sizes:
        if not isinstance(size, dict):
            continue
        file_id = string(size.get("file_id"))
        if file_id is None:
            continue
        width, height = integer(size.get("width")), integer(size.get("height"))
        area = width * height if width is not None and height is not None and width >= 0 and height >= 0 else 0
        if area >= best_area:
            best, best_area = file_id, area
    return best


def _sender(msg: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(id, name, username): `sender_chat` when present (then `from` is a placeholder): its id and title, as the
    contract says, and no username (that column is a person's); else `from`: id, "first last", username."""
    who = get(msg, "sender_chat")
    if isinstance(who, dict):
        name, username = string(who.get("title")) or _full_name(who), None
    else:
        who = msg.get("from")
        if not isinstance(who, dict):
            return None, None, None
        name, username = _full_name(who), string(who.get("username"))
    who_id = integer(who.get("id"))
    return (None if who_id is None else str(who_id)), name, username


def _full_name(who: dict[str, Any]) -> str | None:
    """ "first last" without stray spaces, or None when both are missing."""
    first, last = string(who.get("first_name")), string(who.get("last_name"))
    return string(f"{first or ''} {last or ''}".strip())


def _reply_to(msg: dict[str, Any], chat_id: int) -> str | None:
    """The id of the message this one answers, in the `<chat_id>:<message_id>` form."""
    replied = get(msg, "reply_to_message")
    if isinstance(replied, dict):
        replied_id = integer(get(replied, "message_id"))
        # In a forum topic every message points at the topic's first (service) message: not a reply.
        if replied_id is not None and get(replied, "forum_topic_created") is None:
            replied_chat = get(replied, "chat")
            replied_chat_id = integer(get(replied_chat, "id")) if isinstance(replied_chat, dict) else None
            return f"{chat_id if replied_chat_id is None else replied_chat_id}:{replied_id}"
    external = get(msg, "external_reply")
    if isinstance(external, dict):
        # A reply to a message of another chat: its id is only known when Telegram names that chat.
        external_id = integer(get(external, "message_id"))
        external_chat = get(external, "chat")
        external_chat_id = integer(get(external_chat, "id")) if isinstance(external_chat, dict) else None
        if external_id is not None and external_chat_id is not None:
            return f"{external_chat_id}:{external_id}"
    return None


def _looks_like_message(value: Any) -> bool:
    """Whether an unknown update field holds a Message (it has the three fields every message has)."""
    return isinstance(value, dict) and all(get(value, key) is not None for key in ("message_id", "chat", "date"))


def _no_update_id(update: dict[str, Any]) -> str:
    if get(update, "update_id") is None:
        return "Telegram update has no update_id: this is not a Bot API update; check what posts to /telegram"
    return (
        f"Telegram update has an update_id that is {_json_type(update['update_id'])}, not an integer: "
        "this is not a Bot API update; check what posts to /telegram"
    )


def _unknown_kind(update_id: int, update: dict[str, Any]) -> str:
    keys = [key for key, value in update.items() if key != "update_id" and present(value) is not None]
    if not keys:
        what = "it has nothing besides update_id"
    else:
        shown = ", ".join(_clip(key) for key in keys[:10])
        what = f"its fields: {shown}" + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
    return (
        f"Telegram update {update_id} is of no kind chatlake knows ({what}); {_REPLAY} once chatlake learns this kind"
    )


def _clip(name: str) -> str:
    """A field name short and clean enough to quote in a sentence."""
    name = clean(name)
    return name if len(name) <= 40 else name[:37] + "..."


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a " + type(value).__name__)
