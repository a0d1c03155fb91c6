"""The webhook path: authenticate a delivery, keep its exact bytes in the raw layer, answer.

Shape is not judged here (that is the ETL's job): any authenticated JSON object is stored. This
module must stay light: it runs on every delivery and its imports are paid on every cold start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from chalicelib import layout
from chalicelib.settings import ConfigError, Settings
from chalicelib.storage import Storage, StorageError
from chalicelib.values import decode

MAX_BODY_BYTES = 10 * 1024 * 1024
TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"
WHATSAPP_SIGNATURE_HEADER = "x-hub-signature-256"
# Only these request headers are ever logged: none of them carries a secret.
LOGGED_HEADERS = ("content-type", "content-length", "user-agent")

log = logging.getLogger("chatlake.webhook")


class HttpError(Exception):
    """A request refused with an HTTP status and a message the sender can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _configured(settings: Settings, name: str) -> str:
    """A secret the route needs; without it the route fails closed."""
    try:
        if name == "TELEGRAM_SECRET_TOKEN":
            return settings.telegram_secret_token()
        return settings.require(name)
    except ConfigError as e:
        raise HttpError(503, str(e)) from None


def _same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison that accepts any text (compare_digest refuses non-ASCII str), lone surrogates
    included: "surrogatepass" encodes every one (surrogateescape raised on most, a 500 for a garbled header)."""
    to_bytes = lambda s: s if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass")  # noqa: E731
    return hmac.compare_digest(to_bytes(a), to_bytes(b))


def authenticate(source: str, body: bytes, headers: Mapping[str, str], settings: Settings) -> None:
    """Raise 503 when the route's secret is unset, 413 when too large, 401 when not from the platform."""
    if source == "telegram":
        secret = _configured(settings, "TELEGRAM_SECRET_TOKEN")
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
        if not _same(headers.get(TELEGRAM_SECRET_HEADER) or "", secret):
            raise HttpError(401, "missing or wrong X-Telegram-Bot-Api-Secret-Token")
    elif source == "whatsapp":
        secret = _configured(settings, "WHATSAPP_APP_SECRET")
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
        expected = whatsapp_signature(secret, body)
        if not _same((headers.get(WHATSAPP_SIGNATURE_HEADER) or "").lower(), expected):
            raise HttpError(401, "missing or bad X-Hub-Signature-256")
    else:
        raise ValueError(f"unknown source {source!r}")


def whatsapp_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def unreadable_reason(body: bytes) -> str | None:
    """Why the body is not a JSON object, or None when it is: read with the ETL's own `decode` (orjson first, for
    nearly every delivery), so every body stored raw is one the ETL can read."""
    if not body:
        return "empty body"
    try:
        value = decode(body)
    except UnicodeDecodeError as e:
        return f"body is not UTF-8 ({e.reason} at byte {e.start})"
    except ValueError as e:
        return f"body is not JSON ({e})"
    except RecursionError:
        return "body is JSON nested too deeply to read"
    if not isinstance(value, dict):
        return f"body is JSON but not an object (a {type(value).__name__})"
    return None


def receive(
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    storage: Storage,
    now: datetime | None = None,
) -> str:
    """Authenticate and store one delivery; return its raw key. Raises HttpError for any refusal."""
    try:
        authenticate(source, body, headers, settings)
    except HttpError as e:  # a misconfigured secret shows up as a stream of these
        log.warning("%s delivery refused (%d): %s %s", source, e.status, e.message, _loggable(headers))
        raise
    now = now or datetime.now(UTC)
    day = now.date()
    reason = unreadable_reason(body)
    try:
        if reason is not None:
            body_key, note_key = layout.quarantine_keys(source, day, body)
            note = {
                "reason": reason,
                "received_at": now.isoformat(timespec="milliseconds"),
                "content_type": headers.get("content-type"),
            }
            storage.put(body_key, body, overwrite=False)
            storage.put(note_key, json.dumps(note).encode(), overwrite=False)
            log.warning("%s delivery quarantined at %s: %s %s", source, body_key, reason, _loggable(headers))
            raise HttpError(400, f"{reason}; the bytes are kept under {body_key}")
        key = layout.raw_key(source, day, body)
        stored = storage.put(key, body, overwrite=False)
    except StorageError as e:
        log.error("%s delivery not stored: %s %s", source, e, _loggable(headers))
        raise HttpError(503, "the data lake could not be written; nothing was stored, retry later") from e
    if log.isEnabledFor(logging.DEBUG):  # not per delivery by default: noise, and CloudWatch cost
        log.debug("%s delivery %s %s (%d bytes) %s", source, "stored" if stored else "already stored",
                  key, len(body), _loggable(headers))
    return key


def whatsapp_challenge(params: Mapping[str, str], settings: Settings) -> str:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
    token = _configured(settings, "WHATSAPP_VERIFY_TOKEN")
    if params.get("hub.mode") != "subscribe" or not _same(params.get("hub.verify_token") or "", token):
        raise HttpError(403, "hub.mode must be 'subscribe' and hub.verify_token must match")
    challenge = params.get("hub.challenge")
    if challenge is None:
        raise HttpError(400, "hub.challenge is missing")
    return challenge


def _loggable(headers: Mapping[str, str]) -> dict[str, str]:
    return {h: headers[h] for h in LOGGED_HEADERS if headers.get(h)}
