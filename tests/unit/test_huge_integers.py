"""JSON integers longer than Python's int-string limit (4300 digits): valid JSON, so stored raw and read by the ETL."""

from __future__ import annotations

import sys

import pytest
from chalice.test import Client

from app import app
from chalicelib import etl, values
from chalicelib.webhook import unreadable_reason, whatsapp_signature
from tests.conftest import SECRETS, keys

DIGITS = sys.get_int_max_str_digits() + 700  # 5000 with Python's default limit
HUGE = b"1" * DIGITS
TELEGRAM = b'{"update_id": 1, "x": ' + HUGE + b', "message": {"message_id": 7, "date": 1764000000, ' \
           b'"chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, ' \
           b'"text": "hi", "big": -' + HUGE + b"}}"
WHATSAPP = b'{"object": "whatsapp_business_account", "x": ' + HUGE + b', "entry": [{"id": "1", "changes": []}]}'


@pytest.fixture
def client():
    with Client(app, stage_name="local") as c:
        yield c


def test_the_limit_is_really_exceeded():
    """The fixture would prove nothing if the standard library read it."""
    import json

    with pytest.raises(ValueError, match="limit"):
        json.loads(TELEGRAM)


@pytest.mark.parametrize("body", [TELEGRAM, WHATSAPP, b"{\"n\": " + HUGE + b"}", b"{\"n\": [-" + HUGE + b"]}"])
def test_huge_integers_are_readable_json(body):
    assert unreadable_reason(body) is None


def test_a_huge_integer_in_a_non_object_is_still_not_an_object():
    assert unreadable_reason(b"[" + HUGE + b"]") == "body is JSON but not an object (a list)"


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_huge_integer_delivery_is_stored_raw_and_answered_200(client, lake, secrets_env, source):
    body = TELEGRAM if source == "telegram" else WHATSAPP
    headers = {"Content-Type": "application/json"}
    if source == "telegram":
        headers["X-Telegram-Bot-Api-Secret-Token"] = SECRETS["TELEGRAM_SECRET_TOKEN"]
    else:
        headers["X-Hub-Signature-256"] = whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body)
    r = client.http.post(f"/{source}", headers=headers, body=body)
    assert r.status_code == 200, r.body
    assert keys(lake) == [r.json_body["key"]] and r.json_body["key"].startswith(f"raw/source={source}/")
    assert lake.get(r.json_body["key"]) == body


def test_decode_keeps_a_huge_integer_as_its_digits():
    value = values.decode(b'{"a": ' + HUGE + b', "b": [-' + HUGE + b', 12]}')
    assert value == {"a": HUGE.decode(), "b": ["-" + HUGE.decode(), 12]}


def test_the_etl_reads_a_telegram_delivery_with_huge_integers():
    parsed = etl.parse_delivery("telegram", "raw/source=telegram/dt=2026-11-24/k.json", TELEGRAM)
    assert parsed.problems == []
    assert [(m.message_id, m.text) for m in parsed.messages] == [("42:7", "hi")]


@pytest.mark.parametrize("where", ["update_id", "message_id", "chat_id", "date"])
def test_a_huge_integer_where_a_number_matters_is_a_reject_or_a_row_never_a_crash(where):
    fields = {b"update_id": b"1", b"message_id": b"7", b"chat_id": b"42", b"date": b"1764000000"}
    fields[where.encode()] = HUGE
    body = (b'{"update_id": %(update_id)s, "message": {"message_id": %(message_id)s, "date": %(date)s, '
            b'"chat": {"id": %(chat_id)s, "type": "private"}, "text": "hi"}}') % fields
    parsed = etl.parse_delivery("telegram", "raw/source=telegram/dt=2026-11-24/k.json", body)
    assert parsed.messages or parsed.problems
    assert not any("parser failed" in p for p in parsed.problems), parsed.problems


def test_the_etl_reads_a_whatsapp_delivery_with_a_huge_integer():
    parsed = etl.parse_delivery("whatsapp", "raw/source=whatsapp/dt=2026-11-24/k.json", WHATSAPP)
    assert not any("not readable JSON" in p or "parser failed" in p for p in parsed.problems), parsed.problems
