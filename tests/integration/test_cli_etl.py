"""`chatlake etl` and `backfill`: output, exit codes."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import pytest

from chalicelib import etl
from chalicelib.storage import FolderStorage
from chatlake import cli, status
from chatlake.local import synthetic
from tests.conftest import PROJECT_DIR

DAY = date(2026, 11, 24)


@pytest.fixture
def local_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    return FolderStorage(tmp_path / "lake")


def test_etl_prints_rows_per_table(local_lake, capsys):
    batch = synthetic.deliveries(200, seed=4, day=DAY)
    synthetic.store(local_lake, batch)
    assert cli.main(["etl", "--date", str(DAY)]) == 0
    out = capsys.readouterr().out
    messages, statuses = synthetic.expected_rows(batch)
    assert f"ETL {DAY}" in out and str(len(messages)) in out and str(len(statuses)) in out
    for column in ("deliveries", "messages", "statuses", "rejects"):
        assert column in out


def test_etl_defaults_to_yesterday(local_lake, capsys):
    assert cli.main(["etl"]) == 0
    assert str(etl.yesterday()) in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["etl", "--date", "2026-13-01"], ["etl", "--date", "yesterday"],
                                  ["backfill", "--start", "2026-11-02", "--end", "2026-11-01"],
                                  ["backfill", "--start", "2026-11-01"], ["no-such-verb"]])
def test_bad_usage_exits_2(local_lake, argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_pii_hash_without_salt_exits_1_with_a_clear_message(local_lake, monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "DATALAKE_URL": str(local_lake.root), "PII_MODE": "hash"}
    out = subprocess.run([sys.executable, "-m", "chatlake", "etl", "--date", str(DAY)], cwd=PROJECT_DIR, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == "error: PII_MODE=hash needs PII_SALT (any long random string; keep it secret)"


def test_backfill_runs_each_day_and_sums_up(local_lake, capsys):
    days = [DAY - timedelta(days=i) for i in range(3)]
    expected = 0
    for i, d in enumerate(days):
        batch = synthetic.deliveries(60, seed=i, day=d)
        synthetic.store(local_lake, batch)
        expected += len(synthetic.expected_rows(batch)[0])
    assert cli.main(["backfill", "--start", str(days[-1]), "--end", str(DAY)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and f"{expected:,}" in out
    for d in days:
        assert str(d) in out and not status.is_behind(local_lake, d)
