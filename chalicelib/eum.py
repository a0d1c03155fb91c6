"""WhatsApp through AWS End User Messaging Social: SNS events into the raw layer, and their reading in the ETL.

The service publishes every event of a WhatsApp Business Account to one SNS topic. The SNS `Message` is a JSON
object: `context` (Meta's WABA and phone number ids with their AWS ARNs), `whatsAppWebhookEntry` (a JSON *string*
holding one Meta webhook entry), `aws_account_id`, `message_timestamp` (nanosecond ISO 8601) and, not always,
`messageId`. It is stored exactly (its UTF-8 bytes, content-addressed, so an SNS retry is stored once) under
`raw/source=whatsapp_eum/`; the ETL unwraps the entry and reads it with the WhatsApp parser, so a message gives the
same rows whichever door it came through (`source` stays `whatsapp`).

Light on purpose: the SNS function imports it on every cold start (orjson and the standard library only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import layout, whatsapp
from chalicelib.schema import Parsed
from chalicelib.storage import Storage
from chalicelib.values import decode

SOURCE = layout.EUM_SOURCE
ENTRY = "whatsAppWebhookEntry"
# Keys only an End User Messaging Social event has: how a bare message is told from an SNS/SQS wrapper.
_EVENT_KEYS = frozenset({ENTRY, "context", "aws_account_id", "message_timestamp"})
_MISSING = object()


# --- storing: the SNS function and `chatlake ingest-sns` -------------------------------------------------------------


def message_bytes(message: str) -> bytes:
    """The bytes stored for an SNS message: its UTF-8 encoding. A lone surrogate (only a JSON `\\ud800` escape in a
    replayed file can make one) is kept as its WTF-8 bytes rather than refused: stored, then a reject in the ETL."""
    return message.encode("utf-8", "surrogatepass")


def store(message: str, storage: Storage, now: datetime | None = None) -> tuple[str, bool]:
    """Keep one SNS message under `raw/source=whatsapp_eum/dt=<day received>/<sha256>.json`; return its key and
    whether it was new. Whatever the message holds is kept (judging it is the ETL's job). A StorageError
    propagates: the Lambda invocation fails, so Lambda and SNS retry it."""
    body = message_bytes(message)
    key = layout.raw_key(SOURCE, (now or datetime.now(UTC)).date(), body)
    return key, storage.put(key, body, overwrite=False)


class NotAnEvent(ValueError):
    """A document that is neither an SNS notification (in any of its wrappers) nor an End User Messaging Social
    event; the message says what was found."""


def messages_in(text: str) -> list[str]:
    """The SNS message strings in a document exported from SNS, SQS or Lambda, in order: a Lambda SNS event
    (`{"Records": [{"Sns": {...}}]}`) or one of its records, an SNS notification (`{"Type": "Notification",
    "Message": ...}`, the body of an HTTPS or SQS delivery), an SQS message (`Body`/`body` holding a notification,
    or the bare message with raw delivery), `aws sqs receive-message` output (`{"Messages": [...]}`), a Lambda
    failure-destination record (`requestPayload`), a JSON list of any of these, or the bare message itself (then the
    text is stored as it is). Raises NotAnEvent."""
    try:
        doc = decode(text.encode("utf-8", "surrogatepass"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise NotAnEvent(f"not JSON ({e})") from None
    if isinstance(doc, dict) and _EVENT_KEYS & doc.keys():
        return [text]
    return list(_unwrap(doc, "the document"))


def _unwrap(doc: Any, where: str) -> Iterator[str]:
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _unwrap(item, f"{where}[{i}]")
        return
    if not isinstance(doc, dict):
        raise NotAnEvent(f"{where} is a JSON {type(doc).__name__}, not an SNS notification or an event")
    if isinstance(doc.get("Sns"), dict):  # a record of the Lambda event
        yield _message(doc["Sns"], f"{where}.Sns")
    elif "Type" in doc:  # an SNS notification, as HTTPS and SQS subscriptions receive it
        if doc["Type"] != "Notification":
            raise NotAnEvent(f"{where} is an SNS {_shown(doc['Type'])} message, not a Notification: it holds no event")
        yield _message(doc, where)
    elif isinstance(doc.get("Records"), list):  # the Lambda event, or a Lambda dead-letter queue's message
        yield from _unwrap(doc["Records"], f"{where}.Records")
    elif isinstance(doc.get("Messages"), list):  # `aws sqs receive-message` output
        yield from _unwrap(doc["Messages"], f"{where}.Messages")
    elif isinstance(doc.get("requestPayload"), dict):  # a Lambda on-failure destination's record
        yield from _unwrap(doc["requestPayload"], f"{where}.requestPayload")
    elif isinstance(body := doc.get("Body", doc.get("body")), str):  # an SQS message (API or Lambda event shape)
        yield from messages_in(body)
    elif _EVENT_KEYS & doc.keys():  # a bare event inside a list: re-serialising it would change its bytes
        raise NotAnEvent(f"{where} is an event inside a JSON document: give each bare event as a file of its own "
                         "(its exact text is what is stored)")
    else:
        keys = ", ".join(sorted(map(str, doc))[:6]) or "none"
        raise NotAnEvent(f"{where} is not an SNS notification, an SQS message or an End User Messaging Social event "
                         f"(keys: {keys})")


def _message(notification: dict[str, Any], where: str) -> str:
    message = notification.get("Message")
    if not isinstance(message, str):
        raise NotAnEvent(f"{where} has no 'Message' string (found {_shown(message)})")
    return message


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    return "missing" if value is None else f"a JSON {type(value).__name__}"


# --- reading: the ETL's parser for raw/source=whatsapp_eum ----------------------------------------------------------


def parse(event: dict[str, Any], raw_key: str) -> Parsed:
    """The rows of one stored event: those the Meta webhook carrying the same entry gives (`whatsapp.parse`), with
    `raw_key` pointing at the event. An envelope or entry that cannot be read is one problem (a `rejects` row)."""
    entry = _entry(event)
    if isinstance(entry, str):
        return Parsed(problems=[entry])
    return whatsapp.parse({"object": whatsapp.OBJECT, "entry": [entry]}, raw_key)


def _entry(event: dict[str, Any]) -> dict[str, Any] | str:
    """The decoded Meta webhook entry, or why there is none (a sentence for `rejects`)."""
    text = event.get(ENTRY, _MISSING)
    if text is _MISSING or text is None:
        return (f"End User Messaging Social event has no '{ENTRY}': nothing in it can be read; check that only "
                "the WhatsApp event destination publishes to this SNS topic")
    if not isinstance(text, str):
        return (f"End User Messaging Social event has a '{ENTRY}' that is a JSON {_kind(text)}, not the string "
                "the service sends (a JSON text of one Meta webhook entry): check what publishes to the SNS topic")
    try:
        entry = _json(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        return f"End User Messaging Social event's '{ENTRY}' is not JSON ({e}): it gave no rows"
    if not isinstance(entry, dict):
        return (f"End User Messaging Social event's '{ENTRY}' is JSON but not an object (a JSON {_kind(entry)}): "
                "it gave no rows")
    return entry


def _json(text: str) -> Any:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from `\ud800` escapes in the envelope: JSON allows them
        return json.loads(text)
    return decode(data)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)


# --- media: what GetWhatsAppMessageMedia needs (docs/eum.md) ---------------------------------------------------------


@dataclass(frozen=True)
class PhoneNumber:
    """One phone number of the event's `context`: Meta's id (the rows' `account_id`) and the service's own id,
    `phone-number-id-<hex>`, which `GetWhatsAppMessageMedia` takes as `originationPhoneNumberId`."""

    meta_id: str
    origination_id: str


def phone_numbers(event: dict[str, Any]) -> list[PhoneNumber]:
    """The phone numbers an event's `context.MetaPhoneNumberIds` names (ARN `...:phone-number-id/<hex>`)."""
    context = event.get("context")
    items = context.get("MetaPhoneNumberIds") if isinstance(context, dict) else None
    found = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        meta_id, arn = item.get("metaPhoneNumberId"), item.get("arn")
        if isinstance(meta_id, str) and isinstance(arn, str) and ":phone-number-id/" in arn:
            found.append(PhoneNumber(meta_id, "phone-number-id-" + arn.rpartition("/")[2]))
    return found
