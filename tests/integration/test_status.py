"""`status`: what the lake holds per day, and the days whose output is behind their raw data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import etl, layout
from chalicelib.storage import FolderStorage
from chatlake import cli, status
from chatlake.local import synthetic


@pytest.fixture
def local_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    return FolderStorage(tmp_path / "lake")


def test_is_behind(local_lake):
    day = datetime(2026, 11, 24, tzinfo=UTC).date()
    assert status.is_behind(local_lake, day) is False  # nothing received
    synthetic.store(local_lake, synthetic.deliveries(5, seed=1, day=day))
    assert status.is_behind(local_lake, day) is True  # received, never processed
    etl.run_day(local_lake, day)
    assert status.is_behind(local_lake, day) is False
    late = synthetic.samples(1_795_000_123)["whatsapp"]
    local_lake.put(layout.raw_key("whatsapp", day, late), late)
    assert status.is_behind(local_lake, day) is True  # a late delivery arrived after the run


def test_status_counts_and_flags_a_day_behind(local_lake, capsys):
    today = datetime.now(UTC).date()
    done, late, empty = today - timedelta(days=1), today - timedelta(days=2), today - timedelta(days=3)
    batches = {d: synthetic.deliveries(30, seed=i, day=d, retry_rate=0) for i, d in enumerate((done, late))}
    for batch in batches.values():
        synthetic.store(local_lake, batch)
    etl.run_days(local_lake, [late, done])
    extra = synthetic.deliveries(3, seed=99, day=late, retry_rate=0)  # arrives after the ETL ran
    synthetic.store(local_lake, extra)
    bad = b"not json"
    local_lake.put(layout.quarantine_keys("telegram", done, bad)[0], bad)
    local_lake.put(layout.quarantine_keys("telegram", done, bad)[1], b"{}")

    days = {d.day: d for d in status.recent(local_lake, today, 4)}
    assert days[late].behind is True and days[empty].behind is False
    # `done` depends on `late` through the retry window: its rows may change when `late`'s raw data does
    assert days[done].behind is True and f"raw deliveries of {late}" in days[done].reason
    assert days[done].quarantined == 1
    want = sum(1 for d in {x.body: x for x in batches[done]}.values() if d.source == "telegram")
    assert days[done].raw["telegram"] == want
    assert days[done].rows["messages"] == len(synthetic.expected_rows(batches[done])[0])
    assert days[empty].rows == {"messages": None, "statuses": None, "rejects": None}

    assert cli.main(["status", "--days", "4"]) == 1
    captured = capsys.readouterr()
    assert "BEHIND" in captured.out and str(late) in captured.out
    assert f"backfill --start {late} --end {done}" in captured.err
    etl.run_day(local_lake, late)
    assert cli.main(["status", "--days", "4"]) == 1  # `done` still waits for its run
    etl.run_day(local_lake, done)
    assert cli.main(["status", "--days", "4"]) == 0


def test_status_bad_days(local_lake):
    with pytest.raises(SystemExit) as e:
        cli.main(["status", "--days", "0"])
    assert e.value.code == 2


def test_status_today_is_never_behind(local_lake, capsys):
    today = datetime.now(UTC).date()
    synthetic.store(local_lake, synthetic.deliveries(5, seed=3, day=today))
    assert cli.main(["status", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "today" in out and "BEHIND" not in out
