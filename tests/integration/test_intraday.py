"""Intraday runs: only new deliveries are read, new rows land in one new file per table, a killed run doubles
nothing, the full run finalises, and `behind` for today and for days refreshed since their full run."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import etl, intraday, layout, runlog
from chatlake import cli, status
from tests.conftest import keys
from tests.integration.test_exactly_once import D1, T0, rows, snapshot, tg_message, wa_status


def put(lake, day, *bodies):
    for body in bodies:
        source = "telegram" if b"update_id" in body else "whatsapp"
        lake.put(layout.raw_key(source, day, body), body)


def files(lake, table, day):
    return [k.rpartition("/")[2] for k in keys(lake, layout.enriched_prefix(table, day))]


def test_each_run_reads_only_new_deliveries_and_adds_one_file_per_table(lake):
    put(lake, D1, tg_message(301, 1, "a"), tg_message(301, 2, "b"), wa_status("wamid.I1", "sent", T0))
    first = intraday.run_refresh(lake, D1)
    assert (first.deliveries, first.messages, first.statuses) == (3, 2, 1)
    assert files(lake, "messages", D1) == [f"intraday-{first.run}.parquet"]
    assert files(lake, "rejects", D1) == []  # nothing to add: no file
    assert intraday.run_refresh(lake, D1).deliveries == 0  # nothing new: nothing read, nothing written
    # a retry of message 1 (same version, new bytes: another raw key) and a new message
    retry = tg_message(301, 1, "a").replace(b'"update_id":301001', b'"update_id":301999')
    put(lake, D1, retry, tg_message(301, 3, "c"), b'{"no": "update_id"}')
    second = intraday.run_refresh(lake, D1)
    assert (second.deliveries, second.messages, second.rejects, second.duplicates) == (3, 1, 1, 1)
    assert len(files(lake, "messages", D1)) == 2 and len(rows(lake, "messages", D1)) == 3
    assert [m.kind for m in runlog.read_all(lake, D1)] == ["intraday", "intraday"]
    assert "intraday runs" in etl.behind_reason(lake, D1)  # a past day: not finalised

    full = etl.run_day(lake, D1)  # finalises: one file per table, as a clean run
    assert files(lake, "messages", D1) == ["part-0.parquet"] and full.messages == 3
    assert etl.behind_reason(lake, D1) is None
    assert [m.kind for m in runlog.read_all(lake, D1)] == ["intraday", "intraday", "full"]


def test_a_refresh_after_the_full_run_adds_only_what_arrived_since(lake):
    put(lake, D1, tg_message(302, 1, "a"), tg_message(302, 2, "b"))
    etl.run_day(lake, D1)
    put(lake, D1, tg_message(302, 3, "late"))
    late = intraday.run_refresh(lake, D1)
    assert (late.deliveries, late.messages) == (1, 1)  # the full run's consumption counts
    assert "intraday runs" in etl.behind_reason(lake, D1)
    assert [r.day for r in etl.catch_up(lake, D1 + timedelta(days=1), window=0)] == [D1]
    assert files(lake, "messages", D1) == ["part-0.parquet"] and len(rows(lake, "messages", D1)) == 3


@pytest.mark.parametrize("killed_at", ["enriched/statuses/", "etl/dt="])
def test_a_run_killed_before_its_manifest_doubles_nothing(lake, monkeypatch, killed_at):
    """Killed after its messages file (before statuses), or after all its files (before the manifest)."""
    put(lake, D1, tg_message(303, 1, "a"), wa_status("wamid.I2", "read", T0), b'{"bad": 1}')
    real_put = type(lake).put

    def killed(self, key, data, **kw):
        if key.startswith(killed_at):
            raise KeyboardInterrupt  # SIGKILL's stand-in: nothing after it runs
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(type(lake), "put", killed)
    with pytest.raises(KeyboardInterrupt):
        intraday.run_refresh(lake, D1)
    monkeypatch.undo()
    assert runlog.read_all(lake, D1) == []
    again = intraday.run_refresh(lake, D1)
    assert again.deliveries == 3 and again.messages == 0  # read again, its rows found visible
    assert [len(rows(lake, t, D1)) for t in layout.TABLES] == [1, 1, 1]
    clean = snapshot(lake, [D1])
    etl.run_day(lake, D1)
    assert snapshot(lake, [D1]) == clean  # the same rows, now finalised


def test_a_version_an_earlier_day_gives_is_not_added(lake):
    body = tg_message(304, 1, "retried")
    put(lake, D1, body)
    etl.run_day(lake, D1)
    put(lake, D1 + timedelta(days=1), body, tg_message(304, 2, "new"))
    result = intraday.run_refresh(lake, D1 + timedelta(days=1))
    assert (result.messages, result.duplicates) == (1, 1)


def test_today_is_behind_only_when_a_delivery_waits_more_than_two_intervals(lake):
    today = datetime.now(UTC).date()
    put(lake, today, tg_message(305, 1, "now"))
    assert etl.behind_reason(lake, today) is None  # just arrived
    later = datetime.now(UTC) + timedelta(minutes=31)
    reason = etl.behind_reason(lake, today, now=later)
    assert "not in a row yet" in reason and "chatlake refresh" in reason
    assert etl.behind_reason(lake, today, now=later, interval_minutes=60) is None
    intraday.run_refresh(lake, today)
    assert etl.behind_reason(lake, today, now=later) is None
    fresh = intraday.freshness(lake, today)
    assert fresh.pending == 0 and fresh.newest_row_at == fresh.newest_raw_at and len(fresh.runs) == 1


def test_refresh_command_prints_what_it_added_and_refuses_bad_dates(lake, capsys, monkeypatch):
    put(lake, D1, tg_message(306, 1, "a"))
    assert cli.main(["refresh", "--date", str(D1)]) == 0
    out = capsys.readouterr().out
    assert "refresh" in out and "deliveries" in out
    assert cli.main(["refresh", "--date", str(D1)]) == 0
    assert "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["refresh", "--date", "2999-01-01"])
    assert e.value.code == 2


def test_manifests_name_what_each_run_consumed(lake):
    put(lake, D1, tg_message(307, 1, "a"))
    run = intraday.run_refresh(lake, D1)
    manifest = json.loads(lake.get(layout.run_key(D1, run.run)))
    assert manifest["kind"] == "intraday" and manifest["deliveries"] == 1
    [name] = manifest["consumed"]["telegram"].split("\n")  # format 2: one string of sorted names per source
    assert layout.raw_key("telegram", D1, tg_message(307, 1, "a")).endswith(name + ".json")
    assert manifest["oldest_raw_at"] <= time.time() and manifest["files"]["messages"].endswith(".parquet")
    lake.put(layout.run_key(D1, "0-damaged"), b"{not json")  # a damaged manifest is skipped, the others count
    assert intraday.run_refresh(lake, D1).deliveries == 0


def test_status_shows_todays_freshness_and_runs_and_json_exits_1_when_behind(lake, capsys):
    today = datetime.now(UTC).date()
    put(lake, today, tg_message(308, 1, "a"))
    later = datetime.now(UTC) + timedelta(minutes=45)
    assert status.command(lake, 2, None, etl.DEFAULT_RETRY_WINDOW_DAYS, 15, fmt="json", now=later) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["behind"] == [str(today)]
    assert report["today"]["pending"] == 1 and report["today"]["lag_seconds"] > 1800
    assert "chatlake refresh" in report["days"][0]["reason"]
    intraday.run_refresh(lake, today)
    assert status.command(lake, 2, None, etl.DEFAULT_RETRY_WINDOW_DAYS, 15, fmt="json", now=later) == 0
    report = json.loads(capsys.readouterr().out)
    today_ = report["today"]
    assert today_["pending"] == 0 and today_["newest_row_at"] == today_["newest_raw_at"]
    assert [r["kind"] for r in today_["runs"]] == ["intraday"] and today_["runs"][0]["messages"] == 1
    assert cli.main(["status", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "every delivery is in a row" in out and "today's runs" in out


class _Ticks:
    """A `stopping` event whose waits return at once: `ticks` times "not stopped", then "stopped"."""

    def __init__(self, ticks: int) -> None:
        self.ticks, self.waited = ticks, []

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.ticks -= 1
        return self.ticks < 0


def test_the_local_stack_runs_intraday_every_interval_and_the_lambda_logs_metrics(lake, capsys):
    from chalice.test import Client

    from app import app
    from chatlake.local import stack

    today = datetime.now(UTC).date()
    put(lake, today, tg_message(309, 1, "a"))
    ticks = _Ticks(1)
    stack.intraday_scheduler(ticks, 15)
    assert ticks.waited == [900, 900] and "[refresh]" in capsys.readouterr().out
    assert len(rows(lake, "messages", today)) == 1
    put(lake, today, tg_message(309, 2, "b"))
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:us-east-1:123456789012:rule/intraday"])
        reply = client.lambda_.invoke("intraday_etl", event)
    [run] = reply.payload["runs"]
    assert (run["deliveries"], run["messages"]) == (1, 1)
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["Function"] == "intraday_etl" and emf["Deliveries"] == 1 and emf["Failures"] == 0
