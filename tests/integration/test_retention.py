"""Retention: `prune` deletes exactly what is older than RAW_RETENTION_DAYS / TABLE_RETENTION_DAYS; a day whose raw
data was pruned keeps its tables, is not "behind" and is never re-run into emptiness; the S3 lifecycle rules (moto)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import etl, layout
from chalicelib.settings import ConfigError
from chalicelib.storage import Storage
from chatlake import cli, retention
from chatlake.deploy.steps import lifecycle_rules
from chatlake.local.synthetic import telegram_bytes
from tests.conftest import keys

TODAY = datetime.now(UTC).date()


def body(n: int) -> bytes:
    return telegram_bytes({"update_id": n, "message": {"message_id": n, "from": {"id": 123456789, "first_name": "A"},
                                                       "chat": {"id": 123456789, "type": "private"},
                                                       "date": 1_741_600_000 + n, "text": f"m{n}"}})


def fill(storage: Storage, ages: range) -> None:
    for age in ages:
        day = TODAY - timedelta(days=age)
        storage.put(layout.raw_key("telegram", day, body(age)), body(age))
        b, note = layout.quarantine_keys("telegram", day, b"x%d" % age)
        storage.put(b, b"x")
        storage.put(note, b"{}")
        storage.put(f"media/source=telegram/dt={day}/{'a' * 64}.jpg", b"jpg")
    etl.run_days(storage, [TODAY - timedelta(days=a) for a in ages if a > 0])


def test_prune_removes_exactly_what_is_older_than_the_settings(lake: Storage, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fill(lake, range(0, 8))
    monkeypatch.setenv("RAW_RETENTION_DAYS", "3")
    monkeypatch.setenv("TABLE_RETENTION_DAYS", "5")
    before = keys(lake)
    assert cli.main(["prune", "--dry-run"]) == 0
    assert keys(lake) == before and "nothing was deleted" in capsys.readouterr().out
    assert cli.main(["prune"]) == 0
    after = keys(lake)
    for key in before:
        day = layout.day_of(key)
        age = (TODAY - day).days if day else None
        raw_layer = key.startswith(retention.RAW_DERIVED)  # the raw layers and the ETL's mentions index of them
        table_layer = key.startswith(layout.TABLE_LAYERS)
        gone = (raw_layer and age is not None and age > 3) or (table_layer and age is not None and age > 5)
        assert (key not in after) == gone, key
    # raw pruned, tables kept (ages 4 and 5): not behind, and a re-run keeps them as they are
    for age in (4, 5):
        day = TODAY - timedelta(days=age)
        assert not list(lake.keys(layout.raw_prefix("telegram", day)))
        assert etl.behind_reason(lake, day) is None
        part = lake.get(layout.part_key("messages", day))
        result = etl.run_day(lake, day)
        assert result.warnings and "kept" in result.warnings[0]
        assert lake.get(layout.part_key("messages", day)) == part
    assert all(etl.behind_reason(lake, TODAY - timedelta(days=a)) is None for a in range(1, 8))
    assert etl.catch_up(lake, TODAY, days=7) == []


def test_imports_without_a_day_go_by_age(lake: Storage) -> None:
    lake.put("imports/telegram/old.json", b"{}")
    lake.put("imports/telegram/new.json", b"{}")
    if hasattr(lake, "root"):
        old = time.time() - 11 * 86400
        os.utime(lake.root / "imports/telegram/old.json", (old, old))
        p = retention.plan(lake, 10, None)
        assert p.keys == ["imports/telegram/old.json"]
    else:
        assert retention.plan(lake, 10, None).keys == []  # moto stamps objects now


def test_unset_keeps_everything_and_tables_shorter_than_raw_is_refused(lake: Storage,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fill(lake, range(1, 3))
    before = keys(lake)
    assert cli.main(["prune"]) == 0 and keys(lake) == before
    with pytest.raises(ConfigError):
        retention.plan(lake, 10, 5)
    monkeypatch.setenv("RAW_RETENTION_DAYS", "ten")
    assert cli.main(["prune"]) == 1


def test_lifecycle_rules_on_the_bucket(s3: object) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket="chatlake-test", LifecycleConfiguration={"Rules": [
        {"ID": "owner-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3}}]})
    rules = retention.apply_lifecycle(s3, "chatlake-test", "lake/", 30, 400)
    got = {r["ID"]: (r["Filter"]["Prefix"], r["Expiration"]["Days"])
           for r in s3.get_bucket_lifecycle_configuration(Bucket="chatlake-test")["Rules"]}
    assert got == {r["ID"]: (r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules}
    assert got["owner-logs"] == ("logs/", 3)
    assert {v for k, v in got.items() if k != "owner-logs"} == {
        ("lake/raw/", 30), ("lake/quarantine/", 30), ("lake/imports/", 30), ("lake/media/", 30),
        ("lake/etl/mentions/", 30), ("lake/enriched/", 400), ("lake/etl/", 400)}
    retention.apply_lifecycle(s3, "chatlake-test", "lake/", None, 400)  # raw unset: its rules go, others stay
    ids = {r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket="chatlake-test")["Rules"]}
    assert ids == {"owner-logs", "chatlake-expire-lake-enriched", "chatlake-expire-lake-etl"}
    # deploy writes the same expiry rules (at the bucket's root)
    assert [r for r in lifecycle_rules(30, 400) if "Expiration" in r] == retention.expiry_rules(30, 400)


def test_prune_lifecycle_verb_on_s3(lake: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAW_RETENTION_DAYS", "30")
    lake.put("raw/x.json", b"{}")
    if hasattr(lake, "root"):
        with pytest.raises(SystemExit) as e:
            cli.main(["prune", "--lifecycle"])
        assert e.value.code == 2
        return
    assert cli.main(["prune", "--lifecycle"]) == 0
    rules = lake.client.get_bucket_lifecycle_configuration(Bucket="chatlake-test")["Rules"]
    assert {r["Filter"]["Prefix"] for r in rules} == {"lake/raw/", "lake/quarantine/", "lake/imports/", "lake/media/",
                                                     "lake/etl/mentions/"}
