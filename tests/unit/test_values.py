"""chalicelib.values: the one `decode` and the one set of value readers, and both parsers agreeing through them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import etl, telegram, values, webhook, whatsapp
from chalicelib.schema import Message

KEY = "raw/source={}/dt=2026-11-24/k.json"


def telegram_body(text: str, date: Any = 1764000000) -> bytes:
    """A Telegram update as Telegram writes it: ASCII JSON, so a lone surrogate travels as a `\\udXXX` escape."""
    message = {"message_id": 7, "date": date, "chat": {"id": 42, "type": "private"},
               "from": {"id": 42, "first_name": text}, "text": text}
    return json.dumps({"update_id": 1, "message": message}).encode()


def whatsapp_body(text: str, timestamp: Any = "1764000000") -> bytes:
    """A WhatsApp delivery as Meta writes it (ASCII JSON)."""
    value = {"contacts": [{"wa_id": "42", "profile": {"name": text}}],
             "messages": [{"from": "42", "id": "wamid.1", "timestamp": timestamp, "type": "text",
                           "text": {"body": text}}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}).encode()


BODIES = {"telegram": telegram_body, "whatsapp": whatsapp_body}


def only_message(source: str, body: bytes) -> Message:
    parsed = etl.parse_delivery(source, KEY.format(source), body)
    assert parsed.problems == [] and len(parsed.messages) == 1, parsed
    return parsed.messages[0]


# --- both parsers read a value the same way ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\ud800b", "a\ufffdb"),  # a lone high surrogate
        ("a\udc00b", "a\ufffdb"),  # a lone low surrogate
        ("\udfff\ud800", "\ufffd\ufffd"),  # low before high: two lone ones, not a pair
        ("😀 \ud83d", "😀 \ufffd"),  # a real pair (escaped as two surrogates) is kept, the lone one replaced
    ],
)
def test_both_parsers_give_one_replacement_character_per_lone_surrogate(text: str, expected: str) -> None:
    assert b"\\ud" in telegram_body(text)  # the escape orjson refuses, so the standard library reads it
    got = {source: only_message(source, body(text)) for source, body in BODIES.items()}
    assert {source: (m.text, m.sender_name) for source, m in got.items()} == {
        "telegram": (expected, expected),
        "whatsapp": (expected, expected),
    }
    etl.to_parquet("messages", list(got.values()))  # what the surrogates would have broken


def test_both_parsers_take_the_same_range_of_times() -> None:
    top = values.MAX_UNIX_SECONDS
    assert only_message("telegram", telegram_body("x", top)).sent_at == top * 1000
    assert only_message("whatsapp", whatsapp_body("x", str(top))).sent_at == top * 1000
    for seconds in (0, top + 1):  # the epoch itself is no message's time
        (tg,) = etl.parse_delivery("telegram", KEY.format("telegram"), telegram_body("x", seconds)).problems
        (wa,) = etl.parse_delivery("whatsapp", KEY.format("whatsapp"), whatsapp_body("x", str(seconds))).problems
        assert "date (positive Unix seconds)" in tg and "'timestamp' that is not Unix seconds" in wa


def test_a_parser_crash_becomes_one_reject_in_the_etl_for_either_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsers carry no catch-all of their own: a bug surfaces, and `etl.parse_delivery` alone turns it into
    the delivery's one reject."""
    def boom(*args: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(whatsapp, "_delivery", boom)
    monkeypatch.setattr(telegram, "_add_message", boom)
    for source, body in BODIES.items():
        with pytest.raises(KeyError):
            etl.PARSERS[source](json.loads(body("x")), KEY.format(source))
        parsed = etl.parse_delivery(source, KEY.format(source), body("x"))
        assert parsed.messages == [] and len(parsed.problems) == 1
        assert parsed.problems[0].startswith(f"chatlake's {source} parser failed (KeyError")
        assert "re-run the day" in parsed.problems[0]


# --- the readers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", [None, False, "", [], {}])
def test_empty_values_mean_a_missing_field(empty: Any) -> None:
    assert values.present(empty) is None and values.get({"k": empty}, "k") is None and values.get({}, "k") is None


@pytest.mark.parametrize("value", [0, 0.0, True, "x", [0], {"a": None}])
def test_zero_true_and_non_empty_containers_are_values(value: Any) -> None:
    assert values.present(value) is value and values.get({"k": value}, "k") is value


def test_string_is_a_non_empty_utf8_safe_string_or_none() -> None:
    assert [values.string(v) for v in ("x", "", 5, None, ["x"], "é\ud800")] == ["x", None, None, None, None, "é\ufffd"]
    assert values.clean("ok é 😀") == "ok é 😀"


def test_numbers() -> None:
    assert [values.integer(v) for v in (5, 5.0, 5.5, True, "5", float("inf"))] == [5, 5, None, None, None, None]
    assert [values.int64(v) for v in (-(2**63), 2**63 - 1, 2**63, 5.0, True)] == [-(2**63), 2**63 - 1, None, None, None]
    assert [values.digits(v, 3) for v in ("123", "1234", "", "-1", " 1", "1e3", "١٢٣", 123)] == [123] + [None] * 7
    assert [values.millis(v) for v in (1, 0, -1, None, values.MAX_UNIX_SECONDS + 1)] == [1000, None, None, None, None]


def test_mapping_is_the_object_or_an_empty_read_only_one() -> None:
    assert values.mapping({"a": 1}) == {"a": 1}
    for value in (None, [], "x", 3):
        assert values.mapping(value) is values.EMPTY and values.EMPTY.get("k") is None


# --- one decode --------------------------------------------------------------------------------------------------

def test_webhook_and_etl_read_bodies_with_the_one_decode() -> None:
    assert webhook.decode is values.decode and etl.decode is values.decode


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),  # orjson
        (b'{"a": "\\ud800"}', {"a": "\ud800"}),  # orjson refuses a lone surrogate escape; JSON allows it
        (b'{"a": 18446744073709551616}', {"a": 2**64}),  # past 64 bits
    ],
)
def test_decode_reads_what_json_allows(body: bytes, expected: Any) -> None:
    assert values.decode(body) == expected
    assert webhook.unreadable_reason(body) is None


def test_decode_reads_nan() -> None:
    value = values.decode(b'{"a": NaN}')
    assert value["a"] != value["a"] and webhook.unreadable_reason(b'{"a": NaN}') is None


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (b'{"a": "\xff"}', UnicodeDecodeError, "body is not UTF-8 (invalid start byte at byte 7)"),
        (b'{"a": ', ValueError, "body is not JSON (Expecting value: line 1 column 7 (char 6))"),
        (b"[" * 200_000, RecursionError, "body is JSON nested too deeply to read"),
    ],
)
def test_decode_failures_and_the_webhooks_reason(body: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error):
        values.decode(body)
    assert webhook.unreadable_reason(body) == reason
    assert len(etl.parse_delivery("telegram", KEY.format("telegram"), body).problems) == 1


def test_the_webhooks_reasons_for_empty_and_non_objects() -> None:
    assert webhook.unreadable_reason(b"") == "empty body"
    assert webhook.unreadable_reason(b"[1]") == "body is JSON but not an object (a list)"
    assert webhook.unreadable_reason(json.dumps("x").encode()) == "body is JSON but not an object (a str)"
