"""`forget` reads only the raw objects the ETL's mentions index (`chalicelib.mentions`) cannot rule out: it must find
exactly what a full bytes search finds (the person in every layer, on both backends, clear and hashed ids), still
read what the index does not cover (raw data newer than the day's run, a body spelling a digit as an escape, a
damaged index), and leave the index filing the person nowhere, even after a re-delivered old body.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from chalicelib import etl, layout, mentions
from chalicelib.storage import Storage
from chatlake import cli, forget
from tests.integration.test_forget import (
    D1,
    D3,
    DAYS,
    OTHER_PHONE,
    PHONE,
    SALT,
    TG_ID,
    build,
    forget_phone,
    wa,
    wa_status,
    wa_text,
)

SUBJECTS = [("phone", PHONE), ("phone", OTHER_PHONE), ("telegram-user", str(TG_ID)), ("chat", str(TG_ID))]


def what(plan: forget.Plan) -> tuple[Any, ...]:
    return (plan.delete, plan.redact, plan.rows, plan.days, plan.rerun, plan.message_ids, plan.status_ids)


def full_scan(lake: Storage, subject: forget.Subject, pii_salt: str | None,
              monkeypatch: pytest.MonkeyPatch) -> forget.Plan:
    with monkeypatch.context() as m:
        m.setattr(mentions, "read", lambda storage, day, salt: None)  # no index: every object is read
        return forget.make_plan(lake, subject, pii_salt)


def index_ids(lake: Storage) -> list[str]:
    return [ids for key in lake.keys(layout.MENTIONS_ROOT)
            for ids in pq.read_table(io.BytesIO(lake.get(key))).column("ids").to_pylist()]


@pytest.mark.parametrize("pii_salt", [None, SALT])
def test_the_index_finds_exactly_what_a_full_scan_finds(lake: Storage, pii_salt: str | None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    build(lake, pii_salt)
    assert list(lake.keys(layout.MENTIONS_ROOT))  # the ETL wrote it
    if pii_salt:  # hashed mode: no identifier in clear in the index
        assert not any(PHONE in ids or str(TG_ID) in ids for ids in index_ids(lake))
    for kind, value in SUBJECTS:
        subject = forget.Subject.parse(kind, value)
        indexed = forget.make_plan(lake, subject, pii_salt)
        full = full_scan(lake, subject, pii_salt, monkeypatch)
        assert what(indexed) == what(full), (kind, value)
        assert indexed.delete or indexed.redact
        assert indexed.read < full.read == full.scanned  # it skipped objects, and found the same
        # each day's index covers its whole listing: only candidates are read (the other path: the next test)
        assert indexed.mentions and all(mentions.covers(data, indexed.listings[d].digest)
                                        for d, data in indexed.mentions.items())


def test_what_the_index_does_not_cover_is_still_read(lake: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    build(lake)
    # after the day's run: a status to them (not indexed yet), and one body spelling their number's first digit as
    # an escape, indexed as "*" by a run of its day
    late = wa({"statuses": [wa_status(PHONE, "wamid.LATE", 1_741_800_000)]})
    hidden = wa({"contacts": [{"profile": {"name": "Someone"}, "wa_id": OTHER_PHONE}],
                 "messages": [wa_text(OTHER_PHONE, "Someone", "wamid.HID", "call me", 1_741_800_001)["message"]
                              | {"context": {"from": "\\u0031" + PHONE[1:], "id": "wamid.ME1"}}]}
                ).replace(b"\\\\u0031", b"\\u0031")
    assert b"\\u0031" + PHONE[1:].encode() in hidden
    late_key, hidden_key = layout.raw_key("whatsapp", D3, late), layout.raw_key("whatsapp", D1, hidden)
    lake.put(hidden_key, hidden)
    etl.run_day(lake, D1)
    assert mentions.read(lake, D1, None) is not None
    entries = dict(zip(*(mentions.read(lake, D1, None).column(c).to_pylist() for c in mentions.COLUMNS),
                       strict=True))
    assert entries[hidden_key] == mentions.ANY
    lake.put(late_key, late)
    # and a damaged index file: its day is read as a whole
    d2_index = layout.mentions_key(D1 + timedelta(days=1))
    lake.put(d2_index, b"PAR1 not really")
    subject = forget.Subject.parse("phone", PHONE)
    plan = forget.make_plan(lake, subject, None)
    assert late_key in plan.delete and hidden_key in plan.redact
    assert D1 in plan.mentions and not mentions.covers(plan.mentions[D3], plan.listings[D3].digest)
    assert what(plan) == what(full_scan(lake, subject, None, monkeypatch))
    assert forget_phone() == 0
    # an index forget could not use is deleted, not left holding them (the ETL's re-run of the day writes it anew)
    assert [lake.get(k) for k in lake.keys(d2_index)] != [b"PAR1 not really"]
    assert not any(PHONE in ids.split(" ") for ids in index_ids(lake))


def test_after_forget_the_index_files_them_nowhere_hashed(lake: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_MODE", "hash")
    monkeypatch.setenv("PII_SALT", SALT)
    build(lake, SALT)
    token = mentions.token(PHONE, SALT)
    assert token and any(token in ids.split(" ") for ids in index_ids(lake))
    assert forget_phone() == 0
    assert not any(token in ids for ids in index_ids(lake))
    # a platform retry of their old bodies: the ETL files them nowhere (the deny list)
    d4 = D3 + timedelta(days=1)
    for body in [wa({"statuses": [wa_status(PHONE, "wamid.OUT9", 1_741_900_000)]})]:
        lake.put(layout.raw_key("whatsapp", d4, body), body)
    etl.run_days(lake, [d4], SALT)
    assert list(lake.keys(layout.mentions_key(d4)))
    assert not any(token in ids for ids in index_ids(lake))
    assert all(etl.behind_reason(lake, d, SALT) is None for d in DAYS)


def test_a_forgotten_bsuid_is_filed_nowhere_when_it_comes_back(lake: Storage) -> None:
    build(lake)
    bsuid = "US.4455667788990011"
    assert cli.main(["forget", "--wa-id", bsuid, "--yes"]) == 0  # not in the lake: the deny list only
    body = wa({"contacts": [{"profile": {"name": "Back Again"}, "user_id": bsuid, "wa_id": OTHER_PHONE}],
               "messages": [wa_text(OTHER_PHONE, "Back Again", "wamid.BS1", "hi", 1_741_600_000)["message"]]})
    day = D3 + timedelta(days=2)
    lake.put(layout.raw_key("whatsapp", day, body), body)
    etl.run_day(lake, day)
    [ids] = mentions.read(lake, day, None).column("ids").to_pylist()
    assert OTHER_PHONE in ids.split(" ") and "4455667788990011" not in ids


def test_forgets_raw_listings_are_the_etls_with_end_user_messaging(lake: Storage) -> None:
    """forget's listing of each day (from its one scan of raw/) equals the ETL's, EUM deliveries included: the
    digests it restamps commit records with and checks the index against must be the ETL's own."""
    build(lake)
    sns = b'{"Type":"Notification","Message":"{}"}'
    lake.put(layout.raw_key(layout.EUM_SOURCE, D1, sns), sns)
    etl.run_day(lake, D1)
    raw = [k for k in forget._scan_keys(lake) if k.startswith(layout.RAW_ROOT)]
    listings = forget._listings(raw)
    assert listings == {d: etl.list_raw(lake, d) for d in DAYS}
    assert any(source == layout.EUM_SOURCE for source, _ in listings[D1].objects)
    assert mentions.covers(mentions.read(lake, D1, None), listings[D1].digest)
