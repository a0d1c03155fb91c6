"""Raw deliveries that carry media, of every kind of both platforms, and the fake platforms around a lake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from chalicelib import layout
from chalicelib.storage import Storage

WHATSAPP_KINDS = {"image": "image/jpeg", "audio": "audio/ogg", "voice": "audio/ogg", "video": "video/mp4",
                  "document": "application/pdf", "sticker": "image/webp"}
TELEGRAM_KINDS = ("photo", "video", "animation", "audio", "voice", "video_note", "document", "sticker")
TELEGRAM_MIME = {"video": "video/mp4", "animation": "video/mp4", "audio": "audio/mpeg", "voice": "audio/ogg",
                 "video_note": "video/mp4", "document": "application/pdf", "sticker": None, "photo": None}


def whatsapp_delivery(day: date, media: list[tuple[str, str, str]]) -> bytes:
    """One WhatsApp POST with a message per (wamid, kind, media_id)."""
    ts = str(int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()))
    messages = [{"from": "4915112345678", "id": wamid, "timestamp": ts, "type": kind,
                 kind: {"id": media_id, "mime_type": WHATSAPP_KINDS.get(kind, "image/jpeg"), "sha256": "x"}}
                for wamid, kind, media_id in media]
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
                                       "contacts": [{"wa_id": "4915112345678", "profile": {"name": "A"}}],
                                       "messages": messages}}]}]}).encode()


def telegram_update(day: date, update_id: int, kind: str, file_id: str) -> bytes:
    ts = int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp())
    if kind == "photo":
        content: object = [{"file_id": f"{file_id}-small", "file_unique_id": "s", "width": 90, "height": 90},
                           {"file_id": file_id, "file_unique_id": "l", "width": 1280, "height": 960}]
    else:
        content = {"file_id": file_id, "file_unique_id": "u"}
        if TELEGRAM_MIME[kind]:
            content["mime_type"] = TELEGRAM_MIME[kind]  # type: ignore[index]
    message = {"message_id": update_id, "date": ts, "chat": {"id": 42, "type": "private", "first_name": "B"},
               "from": {"id": 42, "is_bot": False, "first_name": "B"}, kind: content}
    if kind == "animation":
        message["document"] = content
    return json.dumps({"update_id": update_id, "message": message}).encode()


def put_raw(storage: Storage, source: str, day: date, body: bytes) -> str:
    key = layout.raw_key(source, day, body)
    storage.put(key, body)
    return key
