"""Updates as real client libraries re-serialise them give the same rows as the originals.

Why: bots forward or persist updates with python-telegram-bot's `Update.de_json(...).to_json()`, which writes every
optional flag as `false` (`"group_chat_created": false`, ...). Such a delivery must give exactly the rows of the
update Telegram sent. python-telegram-bot is a test oracle only (requirements-dev.txt); chalicelib never imports it.
WhatsApp has no maintained client library that re-serialises webhook payloads, so it has only the empty-value
property of tests/unit/test_fuzz.py.
"""

from __future__ import annotations

import copy
import itertools
import json
from datetime import date
from typing import Any

import pytest
import telegram as ptb

import tests.unit.test_telegram as telegram_tests
from chalicelib.schema import Parsed
from chalicelib.telegram import parse
from chatlake.local import synthetic
from tests.conftest import PAYLOADS, record_figure

KEY = "raw/source=telegram/dt=2026-11-24/0123abcd.json"
CORPUS = {p.stem: json.loads(p.read_bytes()) for p in sorted((PAYLOADS / "telegram").glob("*.json"))}
# Corpus files python-telegram-bot 22.8 (Bot API 10.0) refuses, and why; any other refusal fails the test.
CORPUS_REFUSED = {
    "no_update_id": "deliberately malformed: no update_id",
    "message_without_date": "deliberately malformed: a message without date",
    "poll": "its poll options have no persistent_id, which PTB requires since Bot API 9.6",
    "poll_update": "its poll options have no persistent_id, which PTB requires since Bot API 9.6",
    "poll_answer": "it has no option_persistent_ids, which PTB requires since Bot API 9.6",
}
# Tests of tests/unit/test_telegram.py whose payloads are not harvested: tens of thousands of mutations, 5,000-deep
# nesting.
NOT_HARVESTED = {"test_parse_never_raises_on_mutated_corpus_payloads", "test_huge_and_deep_values_are_fine"}


def round_trip(update: dict[str, Any]) -> dict[str, Any]:
    """What a bot that persists updates with python-telegram-bot writes back."""
    return json.loads(ptb.Update.de_json(copy.deepcopy(update), bot=None).to_json())


def harvest_inline_payloads() -> list[dict[str, Any]]:
    """Every distinct update tests/unit/test_telegram.py hands to `parse`, caught by running its tests with a recording
    `parse` (their parametrized cases expanded): the hand-written payloads next to the corpus files."""
    seen: dict[str, dict[str, Any]] = {}
    real = telegram_tests.parse

    def recording(update: Any, raw_key: str) -> Parsed:
        if isinstance(update, dict):
            seen.setdefault(json.dumps(update), copy.deepcopy(update))
        return real(update, raw_key)

    telegram_tests.parse = recording
    try:
        for name, test in vars(telegram_tests).items():
            if not name.startswith("test_") or name in NOT_HARVESTED or not callable(test):
                continue
            grids = []
            for mark in getattr(test, "pytestmark", []):
                if mark.name == "parametrize":
                    names = mark.args[0]
                    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
                    grids.append([dict(zip(names, v if len(names) > 1 else (v,), strict=True)) for v in mark.args[1]])
            for combo in itertools.product(*grids):
                test(**{k: v for case in combo for k, v in case.items()})
    finally:
        telegram_tests.parse = real
    return list(seen.values())


def test_every_telegram_payload_of_the_tests_gives_the_same_rows_after_a_python_telegram_bot_round_trip() -> None:
    """Corpus files, the hand-written payloads of tests/unit/test_telegram.py and synthetic deliveries of every kind."""
    synthetic_updates = [
        json.loads(d.body) for d in synthetic.deliveries(300, seed=7, day=date(2026, 11, 24), sources=["telegram"])
    ]
    cases = [(f"corpus {name}", doc) for name, doc in CORPUS.items()]
    cases += [(f"inline #{i}", doc) for i, doc in enumerate(harvest_inline_payloads())]
    cases += [(f"synthetic #{i}", doc) for i, doc in enumerate(synthetic_updates)]
    refused: dict[str, str] = {}
    changed: list[str] = []
    flags_seen = 0
    for label, doc in cases:
        original = parse(doc, KEY)
        try:
            again = round_trip(doc)
        except Exception as e:  # python-telegram-bot cannot read it: recorded, and checked below
            refused[label] = f"{type(e).__name__}: {e}"
            continue
        if label.startswith("inline") and original.problems:
            # A hand-written malformed value PTB coerces (a date of true or 1.5 becomes 1): not the same update.
            refused[label] = "deliberately malformed: " + original.problems[0]
            continue
        flags_seen += '": false' in json.dumps(again)
        if parse(again, KEY) != original:
            changed.append(label)
    assert changed == []
    assert {label.removeprefix("corpus ") for label in refused if label.startswith("corpus")} == set(CORPUS_REFUSED)
    assert not any(label.startswith("synthetic") and "persistent_id" not in why for label, why in refused.items())
    passed = len(cases) - len(refused)
    assert passed >= 400, (passed, refused)
    assert flags_seen >= 300  # the round trips did write the false flags this test is about
    record_figure(
        "python-telegram-bot round trip",
        f"{passed} of {len(cases)} Telegram payloads gave the same rows after Update.de_json().to_json() "
        f"(PTB {ptb.__version__}); {len(refused)} refused by PTB or malformed by design",
    )


@pytest.mark.parametrize("name", sorted(CORPUS_REFUSED))
def test_corpus_files_python_telegram_bot_refuses_are_the_listed_ones(name: str) -> None:
    with pytest.raises((TypeError, KeyError)):
        round_trip(CORPUS[name])
