"""The WhatsApp parser over the byte-exact payload corpus in tests/payloads/whatsapp (contract sections 3, 3.1)."""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Iterator
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from chalicelib.schema import COLUMNS, Message, Parsed, Status
from chalicelib.whatsapp import parse
from tests.conftest import PAYLOADS

CORPUS_DIR = PAYLOADS / "whatsapp"
CORPUS = sorted(CORPUS_DIR.glob("*.json"))
BAD = {"wrong_object", "missing_entry", "message_without_id", "message_without_timestamp"}
SILENT = {"template_status_update", "account_update", "user_preferences", "value_errors"}  # no rows, no problems

BIZ, BIZ_ID = "15550783881", "106540352242922"
SHEENA = "16505551234"
BSUID = "US.13491208655302741918"
# A message the business sent to Sheena: replied to, reacted to.
BIZ_MSG = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQzVBMUQyRjM3RTlDNEIxMAA="


def key(name: str) -> str:
    return f"raw/source=whatsapp/dt=2025-02-12/{name}.json"


def load(name: str) -> dict[str, Any]:
    return json.loads((CORPUS_DIR / f"{name}.json").read_bytes())


def run(name: str) -> Parsed:
    return parse(load(name), key(name))


def row(name: str, message_id: str, sent_at: int, message_type: str, **columns: Any) -> Message:
    """The expected row of a message from Sheena to the business, every column spelled out by the defaults."""
    values: dict[str, Any] = {
        "chat_id": SHEENA,
        "sender_id": SHEENA,
        "sender_name": "Sheena Nelson",
        "sender_phone": SHEENA,
        "account_id": BIZ_ID,
        "edited_at": None,
        "chat_title": None,
        "sender_username": None,
        "text": None,
        "media_id": None,
        "media_mime_type": None,
        "reply_to_message_id": None,
        "is_edit": False,
        "direction": "in",
        **columns,
    }
    return Message(
        source="whatsapp",
        message_id=message_id,
        sent_at=sent_at,
        chat_type="private",
        message_type=message_type,
        raw_key=key(name),
        **values,
    )


def only_message(name: str) -> Message:
    parsed = run(name)
    assert parsed.problems == [] and parsed.statuses == []
    assert len(parsed.messages) == 1
    return parsed.messages[0]


def assert_schema_valid(parsed: Parsed) -> None:
    """Every row fits its table's columns (types, required values, Parquet-safe text and times)."""
    assert isinstance(parsed, Parsed)
    for table, rows in (("messages", parsed.messages), ("statuses", parsed.statuses)):
        row_type = Message if table == "messages" else Status
        required = {f.name for f in fields(row_type) if f.default is MISSING and f.default_factory is MISSING}
        for r in rows:
            assert type(r) is row_type
            for column, kind in COLUMNS[table].items():
                value = getattr(r, column)
                if value is None:
                    assert column not in required, (table, column)
                elif kind == "string":
                    assert type(value) is str and value, (table, column, value)
                    value.encode("utf-8")  # a lone surrogate would fail the Parquet write of the whole day
                elif kind == "timestamp":
                    assert type(value) is int and 0 <= value <= 253_402_300_799_000, (table, column, value)
                elif kind == "bool":
                    assert type(value) is bool
                else:
                    assert type(value) is int and -(1 << 63) <= value < 1 << 63
    for problem in parsed.problems:
        assert type(problem) is str and problem.startswith("WhatsApp "), problem
        problem.encode("utf-8")


# --- the corpus itself ---------------------------------------------------------------------------------------------


def test_corpus_has_every_documented_case():
    names = {p.stem for p in CORPUS}
    required = {
        "text", "text_reply", "image_caption", "audio_voice", "video", "document", "sticker", "location", "contacts",
        "interactive_button_reply", "interactive_list_reply", "button", "reaction", "reaction_removed", "order",
        "system_number_changed", "referral_ad", "unsupported", "unknown_future_type", "edit", "revoke", "batch",
        "bsuid_only", "smb_message_echoes", "status_sent", "status_delivered", "status_read", "status_failed",
        "status_batch", "template_status_update", "value_errors", *BAD,
    }  # fmt: skip
    assert required <= names, required - names
    assert (CORPUS_DIR / "README.md").is_file()


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_files_are_the_bytes_meta_posts(path: Path):
    """Compact JSON, ASCII only (\\uXXXX escapes, surrogate pairs for emoji), '/' escaped: as Meta's encoder writes."""
    body = path.read_bytes()
    doc = json.loads(body)
    assert isinstance(doc, dict)
    canonical = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")
    assert body == canonical
    assert b"/" not in body.replace(b"\\/", b"")


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_every_corpus_file_parses_to_valid_rows(path: Path):
    parsed = parse(json.loads(path.read_bytes()), key(path.stem))
    assert_schema_valid(parsed)
    if path.stem in BAD:
        assert len(parsed.problems) == 1
    else:
        assert parsed.problems == []
        assert (parsed.messages or parsed.statuses) or path.stem in SILENT
    assert all(r.raw_key == key(path.stem) for r in [*parsed.messages, *parsed.statuses])


# --- one row per message, every column -----------------------------------------------------------------------------


def test_text_with_non_ascii_and_emoji():
    assert only_message("text") == row(
        "text",
        "wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQUIyQzlFMEYxQTdENEU4QjYwMQA=",
        1739321024000,
        "text",
        chat_id="34612345678",
        sender_id="34612345678",
        sender_phone="34612345678",
        sender_name="Zoë Núñez 🌻",
        text="¡Hola! ¿Hacéis envíos a Zürich? 🚚📦 Gracias 🙏🏽",
    )


def test_text_reply_points_at_the_context_message():
    assert only_message("text_reply") == row(
        "text_reply",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUQ5RjFCMkM0N0UwOEExQzNEMgA=",
        1739321088000,
        "text",
        text="Yes, Tuesday at 10:30 works for me. See https://example.com/booking/42",
        reply_to_message_id=BIZ_MSG,
    )


def test_image_caption_is_the_text_and_the_media_is_kept():
    assert only_message("image_caption") == row(
        "image_caption",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTFGOUMwRDZFMkI3QThDNUQ0MwA=",
        1739321120000,
        "image",
        text="Photo of the damaged box / receipt attached",
        media_id="1003383421387256",
        media_mime_type="image/jpeg",
    )


def test_voice_note_has_media_and_no_text():
    assert only_message("audio_voice") == row(
        "audio_voice",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdDMkU5QjFEMEY0QTZFOEM1NQA=",
        1739321150000,
        "audio",
        media_id="1272461634026593",
        media_mime_type="audio/ogg; codecs=opus",
    )


def test_video_caption():
    assert only_message("video") == row(
        "video",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTBCMUMyRDNFNEY1QTZCN0M2NgA=",
        1739321190000,
        "video",
        text="Unboxing — the lid won't close",
        media_id="1535713570472395",
        media_mime_type="video/mp4",
    )


def test_document_caption_is_the_text_never_the_file_name():
    assert only_message("document") == row(
        "document",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTlFOEQ3QzZCNUE0RjNFMkQ3NwA=",
        1739321230000,
        "document",
        text="Invoice for order 7781",
        media_id="1820385898826493",
        media_mime_type="application/pdf",
    )


def test_sticker_is_media_without_text():
    assert only_message("sticker") == row(
        "sticker",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTVENEMzQjJBMUYwRTlEOEM4OAA=",
        1739321260000,
        "sticker",
        media_id="1016935743524818",
        media_mime_type="image/webp",
    )


def test_location_name_and_address_are_not_text():
    assert only_message("location") == row(
        "location", "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTJCM0M0RDVFNkY3QThCOUM5OQA=", 1739321290000, "location"
    )


def test_shared_contact_card_gives_one_row_and_no_text():
    assert only_message("contacts") == row(
        "contacts", "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTZGNUU0RDNDMkIxQTBGOUVBQQA=", 1739321320000, "contacts"
    )


def test_interactive_button_reply_title_not_id():
    assert only_message("interactive_button_reply") == row(
        "interactive_button_reply",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTFBMkIzQzRENUU2RjdBOEJCQgA=",
        1739321350000,
        "interactive",
        text="Reschedule",
        reply_to_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQTFCMkMzRDRFNUY2MEJCMQA=",
    )


def test_interactive_list_reply_title_not_id_or_description():
    assert only_message("interactive_list_reply") == row(
        "interactive_list_reply",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTlCOEM3RDZFNUY0QTNCMkNDQwA=",
        1739321380000,
        "interactive",
        text="Express shipping",
        reply_to_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwRjZFNUQ0QzNCMkExOTBDQwA=",
    )


def test_quick_reply_button_text_not_payload():
    assert only_message("button") == row(
        "button",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTAwMTEyMjMzNDQ1NTY2NzdERAA=",
        1739321410000,
        "button",
        text="Stop promotions",
        reply_to_message_id="wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwMTEyMjMzNDQ1NTY2N0REMQA=",
    )


def test_reaction_is_a_row_with_its_own_id_answering_the_reacted_message():
    assert only_message("reaction") == row(
        "reaction",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTg4Nzc2NjU1NDQzMzIyMTFFRQA=",
        1739321440000,
        "reaction",
        text="👍",
        reply_to_message_id=BIZ_MSG,
    )


def test_removed_reaction_has_null_text():
    assert only_message("reaction_removed") == row(
        "reaction_removed",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTk5QUE4OEJCNzdDQzY2RERGRgA=",
        1739321470000,
        "reaction",
        reply_to_message_id=BIZ_MSG,
    )


def test_order_text():
    assert only_message("order") == row(
        "order",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTQ0NTU2Njc3ODg5OTAwMTFBMAA=",
        1739321500000,
        "order",
        text="Please gift-wrap the mug",
    )


def test_system_number_change_has_its_body_and_no_contacts():
    assert only_message("system_number_changed") == row(
        "system_number_changed",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTU1NjY3Nzg4OTlBQUJCQ0NCMAA=",
        1739321530000,
        "system",
        sender_name=None,  # system messages carry no contacts[]
        text="User Sheena Nelson changed from 16505551234 to 12195555358",
    )


def test_click_to_whatsapp_referral_is_a_plain_text_row():
    assert only_message("referral_ad") == row(
        "referral_ad",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTY2Nzc4ODk5QUFCQkNDRERDMAA=",
        1739321560000,
        "text",
        text="Is the 20% off still on?",
    )


def test_unsupported_message_is_a_row_without_text():
    assert only_message("unsupported") == row(
        "unsupported", "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTc3ODg5OUFBQkJDQ0RERUVEMAA=", 1739321590000, "unsupported"
    )


def test_unknown_future_type_keeps_its_type_and_media_id_but_no_text():
    assert only_message("unknown_future_type") == row(
        "unknown_future_type",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTg4OTlBQUJCQ0NEREVFRkZFMAA=",
        1739321620000,
        "hologram",
        media_id="2218844901762201",
        media_mime_type="model/gltf-binary",
    )


def test_edit_is_a_new_version_of_the_original_message():
    assert only_message("edit") == row(
        "edit",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTFBM0IwRTdDMkQ5RjRFNkExMQA=",  # edit.original_message_id
        1739321650000,
        "image",
        edited_at=1739321650000,
        is_edit=True,
        text="Corrected: it's the blue box, not the red one",
        media_id="1003383421387256",
        media_mime_type="image/jpeg",
        reply_to_message_id=BIZ_MSG,
    )


def test_revoke_is_a_version_without_text():
    assert only_message("revoke") == row(
        "revoke",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTFBM0IwRTdDMkQ5RjRFNkExMQA=",  # revoke.original_message_id
        1739321680000,
        "revoke",
        edited_at=1739321680000,
        is_edit=True,
    )


def test_bsuid_only_user_is_keyed_by_bsuid_and_named_by_user_id():
    assert only_message("bsuid_only") == row(
        "bsuid_only",
        "wamid.HBgXVVMuMTM0OTEyMDg2NTUzMDI3NDE5MThVAgASGBQzQUJDMDAwMDAwMDAwMDAwMDAwMQA=",
        1743600000000,
        "text",
        chat_id=BSUID,
        sender_id=BSUID,
        sender_name="Dana K.",
        sender_phone=None,
        text="Hi! Found you through your username 👋",
    )


def test_empty_from_falls_back_to_the_bsuid():
    doc = load("bsuid_only")
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = ""
    (message,) = parse(doc, "k").messages
    assert (message.chat_id, message.sender_id, message.sender_phone, message.sender_name) == (
        BSUID,
        BSUID,
        None,
        "Dana K.",
    )


def test_leading_plus_is_dropped_from_phone_ids():
    doc = load("text_reply")
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "+" + SHEENA
    (message,) = parse(doc, "k").messages
    assert (message.chat_id, message.sender_id, message.sender_phone, message.sender_name) == (
        SHEENA,
        SHEENA,
        SHEENA,
        "Sheena Nelson",
    )


# --- batches and contacts ------------------------------------------------------------------------------------------


def test_batch_gives_every_message_and_status_with_names_matched_by_id():
    parsed = run("batch")
    assert parsed.problems == []
    amara, li = "447700900123", "8613800138000"
    assert parsed.messages == [
        row(
            "batch",
            "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0ExMTExMTExMTExMTExMUIwMDEA",
            1739322001000,
            "text",
            chat_id=amara,
            sender_id=amara,
            sender_phone=amara,
            sender_name="Amara Okafor",
            text="Hi, is my order shipped?",
        ),
        row(
            "batch",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTIyMjIyMjIyMjIyMjIyQjAwMgA=",
            1739322002000,
            "text",
            text="Thanks!",
        ),
        row(
            "batch",
            "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0EzMzMzMzMzMzMzMzMzM0IwMDMA",
            1739322003000,
            "reaction",
            chat_id=amara,
            sender_id=amara,
            sender_phone=amara,
            sender_name="Amara Okafor",
            text="❤️",
            reply_to_message_id="wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDk5OTk5OTk5OTk5OUIwMDAA",
        ),
        row(
            "batch",
            "wamid.HBgNODYxMzgwMDEzODAwMBUCABIYFDNBNDQ0NDQ0NDQ0NDQ0NDRCMDA0AA==",
            1739322005000,
            "text",
            chat_id=li,
            sender_id=li,
            sender_phone=li,
            sender_name="李雷",  # the first contact (another user, empty name) must not be used
            text="你好，请问营业时间？",
            account_id="113260991744312",  # the second entry's phone number
        ),
    ]
    assert parsed.statuses == [
        Status(
            message_id="wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDk5OTk5OTk5OTk5OUIwMDAA",
            status="read",
            status_at=1739322004000,
            raw_key=key("batch"),
            recipient_id=amara,
            error_code=None,
            error_title=None,
            pricing_category="utility",
            account_id=BIZ_ID,
        )
    ]


def test_contacts_are_never_matched_by_position():
    doc = load("text_reply")
    value = doc["entry"][0]["changes"][0]["value"]
    sheena = value["contacts"][0]
    stranger = {"profile": {"name": "Somebody Else"}, "wa_id": "447700900123"}
    value["contacts"] = [stranger]
    assert parse(doc, "k").messages[0].sender_name is None
    value["contacts"] = [stranger, sheena]
    assert parse(doc, "k").messages[0].sender_name == "Sheena Nelson"
    value["contacts"] = []
    assert parse(doc, "k").messages[0].sender_name is None


@pytest.mark.parametrize("name", [None, "", 42, ["Sheena"], {"first": "Sheena"}])
def test_missing_or_empty_profile_name_is_null(name: Any):
    doc = load("text_reply")
    doc["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = name
    assert parse(doc, "k").messages[0].sender_name is None


# --- messages the business sent from the app -----------------------------------------------------------------------


def test_smb_message_echoes_are_outgoing_rows_from_the_business():
    parsed = run("smb_message_echoes")
    assert parsed.problems == [] and parsed.statuses == []
    business = {"sender_id": BIZ, "sender_phone": BIZ, "sender_name": None, "direction": "out"}
    original = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQUEwMEJCMTFDQzIyREQzMwA="
    assert parsed.messages == [
        row("smb_message_echoes", original, 1739321700000, "text", text="Your order ships tomorrow 📦", **business),
        row(
            "smb_message_echoes",
            original,
            1739321760000,
            "text",
            edited_at=1739321760000,
            is_edit=True,
            text="Your order ships on Friday 📦",
            **business,
        ),
        row(
            "smb_message_echoes",
            "wamid.HBgXVVMuMTM0OTEyMDg2NTUzMDI3NDE5MTgVAgASGBQzRUIwQUEwMEJCMTFDQzIyREQwMAA=",
            1739321800000,
            "revoke",
            chat_id=BSUID,  # to_user_id: the customer has no phone number
            edited_at=1739321800000,
            is_edit=True,
            **business,
        ),
    ]


def test_echo_without_a_customer_is_a_problem():
    doc = load("smb_message_echoes")
    del doc["entry"][0]["changes"][0]["value"]["message_echoes"][0]["to"]
    parsed = parse(doc, "k")
    assert len(parsed.messages) == 2
    assert parsed.problems == [
        "WhatsApp message echo at entry[0].changes[0].value.message_echoes[0] "
        "(id 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQUEwMEJCMTFDQzIyREQzMwA=') has no 'to' or 'to_user_id': "
        "it gave no row (the delivery's other items are unaffected); check what sent it, the raw delivery is kept "
        "for a re-run after a fix"
    ]


# --- statuses ------------------------------------------------------------------------------------------------------

SENT = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwRDFFMkYzQTRCNUM2RDdFOAA="


def status(name: str, message_id: str, st: str, at: int, **columns: Any) -> Status:
    values = {
        "recipient_id": SHEENA,
        "error_code": None,
        "error_title": None,
        "pricing_category": None,
        "account_id": BIZ_ID,
        **columns,
    }
    return Status(message_id=message_id, status=st, status_at=at, raw_key=key(name), **values)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("status_sent", ("sent", 1739321100000)),
        ("status_delivered", ("delivered", 1739321102000)),
        ("status_read", ("read", 1739321160000)),
    ],
)
def test_status_rows(name: str, expected: tuple[str, int]):
    parsed = run(name)
    assert parsed.messages == [] and parsed.problems == []
    assert parsed.statuses == [status(name, SENT, *expected, pricing_category="marketing")]


def test_failed_status_keeps_the_first_error():
    parsed = run("status_failed")
    assert parsed.messages == [] and parsed.problems == []
    assert parsed.statuses == [
        status(
            "status_failed",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwRjBFMEQwQzBCMEEwOTA4MAA=",
            "failed",
            1739321200000,
            error_code=131047,
            error_title="Re-engagement message",
        )
    ]


def test_status_batch_keeps_each_status_and_the_bsuid_recipient():
    voice = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQTlCOEM3RDZFNUY0MDMxMgA="
    parsed = run("status_batch")
    assert parsed.messages == [] and parsed.problems == []
    assert parsed.statuses == [
        status("status_batch", voice, "sent", 1739321300000, pricing_category="service"),
        status("status_batch", voice, "delivered", 1739321301000, pricing_category="service"),
        status("status_batch", voice, "read", 1739321340000),
        status("status_batch", voice, "played", 1739321345000),
        status(
            "status_batch",
            "wamid.HBgXVVMuMTM0OTEyMDg2NTUzMDI3NDE5MTgVAgASGBQzRUIwMTEyMjMzNDQ1NTY2QUEwMAA=",
            "delivered",
            1743600100000,
            recipient_id=BSUID,
            pricing_category="utility",
        ),
    ]


@pytest.mark.parametrize("missing", ["id", "status", "timestamp"])
def test_status_without_a_key_field_is_a_problem(missing: str):
    doc = load("status_batch")
    del doc["entry"][0]["changes"][0]["value"]["statuses"][2][missing]
    parsed = parse(doc, "k")
    assert len(parsed.statuses) == 4
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith(
        f"WhatsApp status at entry[0].changes[0].value.statuses[2] has no usable '{missing}': it gave no row"
    )


# --- deliveries that give nothing, and bad ones --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SILENT))
def test_non_message_fields_and_value_errors_give_nothing_and_no_problem(name: str):
    assert run(name) == Parsed()


@pytest.mark.parametrize(
    "field", ["calls", "history", "smb_app_state_sync", "message_template_quality_update", "user_id_update", "x"]
)
def test_any_other_field_gives_nothing_even_with_a_messages_like_value(field: str):
    doc = load("batch")
    for change in doc["entry"][0]["changes"] + doc["entry"][1]["changes"]:
        change["field"] = field
    assert parse(doc, "k") == Parsed()


def test_wrong_object_is_one_problem():
    assert run("wrong_object") == Parsed(
        problems=[
            "WhatsApp delivery has object 'page', not 'whatsapp_business_account': "
            "check which Meta product posts to /whatsapp"
        ]
    )


def test_missing_entry_is_one_problem():
    assert run("missing_entry") == Parsed(
        problems=[
            "WhatsApp delivery has no 'entry': nothing in it can be read; compare it with Meta's webhook format "
            "and check what posts to /whatsapp"
        ]
    )


def test_message_without_id_is_one_problem_and_the_rest_still_gives_rows():
    parsed = run("message_without_id")
    assert parsed.messages == [
        row(
            "message_without_id",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTUwNTA1MDUwNTA1MDUwNTBGNQA=",
            1739321901000,
            "text",
            text="this one is fine",
        )
    ]
    assert parsed.problems == [
        "WhatsApp message at entry[0].changes[0].value.messages[0] has no 'id': it gave no row (the delivery's "
        "other items are unaffected); check what sent it, the raw delivery is kept for a re-run after a fix"
    ]


def test_message_without_timestamp_is_one_problem_and_the_rest_still_gives_rows():
    parsed = run("message_without_timestamp")
    assert [m.message_id for m in parsed.messages] == ["wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTYwNjA2MDYwNjA2MDYwNjBGNgA="]
    assert parsed.problems == [
        "WhatsApp message at entry[0].changes[0].value.messages[1] "
        "(id 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTcwNzA3MDcwNzA3MDcwNzBGNwA=') has no 'timestamp': it gave no row "
        "(the delivery's other items are unaffected); check what sent it, the raw delivery is kept for a re-run "
        "after a fix"
    ]


@pytest.mark.parametrize(
    "stamp",
    ["", "abc", "1739321024.5", "-1739321024", " 1739321024", "1e9", "١٧٣٩٣٢١٠٢٤", "9" * 5000, 1.5e9, True, None],
)
def test_timestamp_that_is_not_unix_seconds_is_a_problem(stamp: Any):
    doc = load("text_reply")
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = stamp
    parsed = parse(doc, "k")
    assert parsed.messages == []
    assert len(parsed.problems) == 1
    # an empty value is a missing field (what a re-serialising library writes for one)
    words = "no 'timestamp'" if stamp in ("", None) else "a 'timestamp' that is not Unix seconds"
    assert words in parsed.problems[0]
    assert len(parsed.problems[0]) < 500  # a huge value is not copied into the rejects table


def test_timestamp_as_a_bare_integer_is_accepted():
    doc = load("text_reply")
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = 1739321088
    assert parse(doc, "k").messages[0].sent_at == 1739321088000


def test_message_without_id_timestamp_and_sender_is_a_single_problem():
    doc = load("text_reply")
    doc["entry"][0]["changes"][0]["value"]["messages"][0] = {"type": "text", "text": {"body": "?"}}
    parsed = parse(doc, "k")
    assert parsed.messages == []
    assert parsed.problems == [
        "WhatsApp message at entry[0].changes[0].value.messages[0] has no 'id' and no 'timestamp' and no 'from' or "
        "'from_user_id': it gave no row (the delivery's other items are unaffected); check what sent it, the raw "
        "delivery is kept for a re-run after a fix"
    ]


@pytest.mark.parametrize("kind", ["edit", "revoke"])
def test_edit_or_revoke_without_original_id_is_a_problem(kind: str):
    doc = load(kind)
    del doc["entry"][0]["changes"][0]["value"]["messages"][0][kind]["original_message_id"]
    parsed = parse(doc, "k")
    assert parsed.messages == []
    assert len(parsed.problems) == 1 and f"no '{kind}.original_message_id'" in parsed.problems[0]


@pytest.mark.parametrize("delivery", [None, [], "x", 7, 1.5, True])
def test_a_body_that_is_not_an_object_is_one_problem(delivery: Any):
    parsed = parse(delivery, "k")  # type: ignore[arg-type]
    assert parsed.messages == [] and parsed.statuses == [] and len(parsed.problems) == 1
    assert "not a JSON object" in parsed.problems[0]


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("entry", 0), "oops", "entry[0] is 'oops', not an object"),
        (("entry", 0, "changes"), {}, "entry[0] has no 'changes' list"),
        (("entry", 0, "changes", 0), 3, "entry[0].changes[0] is 3, not an object"),
        (("entry", 0, "changes", 0, "field"), None, "entry[0].changes[0] has no 'field' (found null)"),
        (("entry", 0, "changes", 0, "value"), [], "entry[0].changes[0] (field 'messages') has no 'value' object"),
        (("entry", 0, "changes", 0, "value", "messages"), {"a": 1}, "value.messages is an object, not a list"),
        (("entry", 0, "changes", 0, "value", "messages", 0), "m", "value.messages[0] is 'm', not an object"),
    ],
)
def test_broken_structure_is_a_problem_saying_where(path: tuple[Any, ...], value: Any, where: str):
    doc = load("text_reply")
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    parsed = parse(doc, "k")
    assert parsed.messages == []
    assert len(parsed.problems) == 1 and where in parsed.problems[0], parsed.problems


# --- text rules ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("text", ("text", "body")),
        ("image_caption", ("image", "caption")),
        ("reaction", ("reaction", "emoji")),
        ("order", ("order", "text")),
        ("button", ("button", "text")),
        ("system_number_changed", ("system", "body")),
        ("interactive_list_reply", ("interactive", "list_reply", "title")),
    ],
)
def test_empty_text_is_null(name: str, path: tuple[str, ...]):
    doc = load(name)
    node = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = ""
    (message,) = parse(doc, "k").messages
    assert message.text is None


def test_lone_surrogates_are_replaced_so_the_parquet_write_cannot_fail():
    doc = json.loads('{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":'
                     '{"messages":[{"from":"1","id":"w\\ud800","timestamp":"1","type":"text",'
                     '"text":{"body":"a\\udc00b \\ud83d\\ude00"}}]}}]}]}')  # fmt: skip
    (message,) = parse(doc, "k").messages
    assert message.text == "a\ufffdb 😀"  # one U+FFFD per lone surrogate, as in the Telegram parser
    assert message.message_id.encode("utf-8") and message.text.encode("utf-8")


# --- never raises --------------------------------------------------------------------------------------------------

ODD_VALUES: tuple[Any, ...] = (
    None, [], {}, "", "x", 0, -1, 1.5, True, False, "+", "\ud800", "٣", "9" * 5000, 10**30, [{}], {"id": {}},
)  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every dict key and list index in the document, parents before children."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for step, child in children:
        yield (*prefix, step)
        yield from _paths(child, (*prefix, step))


def _mutants(doc: dict[str, Any]) -> Iterator[None]:
    """Mutate `doc` in place, one place and one way at a time (yielding after each), restoring it in between."""
    for path in list(_paths(doc)):
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        step = path[-1]
        original = parent[step]
        if isinstance(parent, dict):
            items = list(parent.items())
            del parent[step]
            yield
            parent.clear()
            parent.update(items)
        else:
            del parent[step]
            yield
            parent.insert(step, original)
        for odd in ODD_VALUES:
            parent[step] = odd
            yield
        parent[step] = original


def test_parse_never_raises_and_always_gives_valid_rows_on_mutated_payloads():
    started = time.perf_counter()
    parses = 0
    for path in CORPUS:
        doc = json.loads(path.read_bytes())
        pristine = copy.deepcopy(doc)
        for _ in _mutants(doc):
            assert_schema_valid(parse(doc, "k"))
            parses += 1
        assert doc == pristine  # the mutator restored everything, and parse never wrote into its input
    assert parses > 10_000
    assert time.perf_counter() - started < 5


def _holds(node: Any, step: Any) -> bool:
    """Whether `node[step]` exists (an earlier change may have replaced the way there)."""
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and type(step) is int and step < len(node)


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    """The container holding `path`'s last step, or None when it is gone."""
    node = doc
    for step in path[:-1]:
        if not _holds(node, step):
            return None
        node = node[step]
    return node if _holds(node, path[-1]) else None


def test_parse_never_raises_on_several_mutations_at_once():
    """Seeded, so any failure replays: three places changed together, 150 times per corpus file."""
    rng = random.Random(20250212)
    for path in CORPUS:
        pristine = json.loads(path.read_bytes())
        paths = list(_paths(pristine))
        for _ in range(150):
            doc = copy.deepcopy(pristine)
            for where in rng.sample(paths, min(3, len(paths))):
                parent = _parent(doc, where)
                if parent is not None:
                    parent[where[-1]] = rng.choice(ODD_VALUES)
            assert_schema_valid(parse(doc, "k"))


def test_deep_and_huge_values_are_not_walked():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    doc = load("text_reply")
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"] = {"body": deep}
    message["context"] = deep
    doc["entry"][0]["changes"][0]["value"]["contacts"] = [deep] * 10_000
    (row_,) = parse(doc, "k").messages
    assert row_.text is None and row_.reply_to_message_id is None and row_.sender_name is None


def test_parse_is_fast():
    doc = load("batch")
    started = time.perf_counter()
    for _ in range(2000):
        parse(doc, "k")
    assert time.perf_counter() - started < 2  # ~10 µs each in practice; 100k deliveries a run must stay cheap


@pytest.mark.parametrize("empty", [False, None, "", [], {}])
def test_an_empty_value_is_an_absent_field(empty: Any):
    """What a library that re-serialises a delivery may write for fields it does not have: no reject, same rows."""
    doc = load("text_reply")
    want = parse(doc, "k")
    value = doc["entry"][0]["changes"][0]["value"]
    value["statuses"] = value["message_echoes"] = value["errors"] = empty
    value["messages"][0] |= {"image": empty, "context_extra": empty, "errors": empty, "referral": empty}
    value["contacts"][0]["user_id"] = empty
    assert parse(doc, "k") == want
    assert want.messages and want.problems == []
