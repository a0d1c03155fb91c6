"""Bad usage at the edges of the calendar: exit 2 with argparse's one-line message, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from chatlake import cli
from tests.conftest import PROJECT_DIR

TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def local_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error line of a usage error (exit 2), after checking nothing else went wrong."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("usage: ") and lines[-1].startswith("chatlake ")
    return lines[-1]


@pytest.mark.parametrize(("argv", "message"), [
    (["etl", "--date", "0001-01-01"], "argument --date: 0001-01-01 is before 1970-01-01; a lake holds nothing older"),
    (["backfill", "--start", "0001-01-01", "--end", "0001-01-02"], "argument --start: 0001-01-01 is before"),
    (["etl", "--date", "2999-01-01"], "argument --date: 2999-01-01 is in the future; "),
    (["backfill", "--start", str(TODAY), "--end", "2999-01-01"], "argument --end: 2999-01-01 is in the future; "),
    (["status", "--days", "1000000"], "argument --days: 1000000 is out of range: use 1 to 3660"),
    (["report", "--days", "800000"], "argument --days: 800000 is out of range: use 1 to 3660"),
    (["report", "--days", "0"], "argument --days: 0 is out of range"),
    (["status", "--days", "-3"], "argument --days: -3 is out of range"),
    (["status", "--days", "week"], "argument --days: 'week' is not a whole number of days"),
])
def test_days_out_of_range_are_bad_usage(argv, message, capsys):
    assert message in usage_error(argv, capsys)


def test_the_future_message_names_today(capsys):
    tomorrow = TODAY + timedelta(days=1)
    assert usage_error(["etl", "--date", str(tomorrow)], capsys).endswith(
        f"{tomorrow} is in the future; nothing can have been received on it yet (today is {TODAY}, UTC)")


def test_the_edges_themselves_are_accepted(capsys, tmp_path):
    assert cli.main(["etl", "--date", "1970-01-01"]) == 0
    assert cli.main(["etl", "--date", str(TODAY)]) == 0  # today has begun: a partial run is allowed
    assert cli.main(["status", "--days", str(cli.MAX_DAYS)]) == 0
    assert cli.main(["report", "--days", str(cli.MAX_DAYS), "--out", str(tmp_path / "r.html")]) == 0
    assert "1970-01-01" in capsys.readouterr().out


def test_a_real_process_prints_no_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATALAKE_URL": str(tmp_path / "lake"), "XDG_CACHE_HOME": str(tmp_path)}
    for argv in (["etl", "--date", "0001-01-01"], ["status", "--days", "1000000"]):
        out = subprocess.run([sys.executable, "-m", "chatlake", *argv], cwd=PROJECT_DIR, env=env,
                             capture_output=True, text=True)
        assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 2  # usage, then the one-line reason
