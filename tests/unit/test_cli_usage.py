"""Bad usage at the edges of the calendar: exit 2 with argparse's one-line message, never a traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

import chatlake
from chalicelib import runtime
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


# --- the command as people expect a CLI to be ---------------------------------------------------------------------

ANALYTICS = sorted(p.stem for p in (PROJECT_DIR / "sql" / "analytics").glob("*.sql"))
BOX_DRAWING = {chr(c) for c in range(0x2500, 0x2580)}


def subcommands() -> argparse._SubParsersAction:
    [action] = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return action


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"chatlake {chatlake.__version__}\n"


def test_every_verb_and_option_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    action = subcommands()
    for verb in action._choices_actions:  # the lines of `chatlake --help`
        assert verb.dest in top and verb.help and "\n" not in verb.help
    for name, parser in action.choices.items():
        assert parser.description, name
        for option in parser._actions:
            assert option.help, f"{name} {option.option_strings or option.dest} has no help"


def test_query_help_lists_the_analytics_pack(capsys):
    with pytest.raises(SystemExit):
        cli.main(["query", "--help"])
    listed = capsys.readouterr().out.split("the analytics pack (sql/analytics), by name:\n", 1)[1]
    assert [line.split()[0] for line in listed.splitlines()] == ANALYTICS


def test_importing_the_cli_imports_no_heavy_library():
    code = ("import sys, chatlake.cli; "
            "print(sorted(m for m in ('duckdb', 'sqlglot', 'boto3', 'pyarrow', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("argv", "usage", "message"), [
    (["stauts"], "usage: chatlake [", "argument VERB: invalid choice: 'stauts' (did you mean status?)"),
    (["query", "top_chat"], "usage: chatlake query ",
     "argument SQL_OR_FILE: no analytics query named 'top_chat' (did you mean top_chats?)"),
    (["query", "whatever"], "usage: chatlake query ", "choose from " + ", ".join(ANALYTICS)),
    (["status", "--format", "jsn"], "usage: chatlake status ", "invalid choice: 'jsn' (did you mean json?)"),
    (["query", "top_chats", "--engine", "duck"], "usage: chatlake query ", "(did you mean duckdb?)"),
    # our own UsageError, raised inside the verb, shows that verb's usage too
    (["backfill", "--start", str(TODAY), "--end", str(TODAY - timedelta(days=1))], "usage: chatlake backfill ",
     f"chatlake backfill: error: --end {TODAY - timedelta(days=1)} is before --start {TODAY}"),
    (["demo", "--deliveries", "0"], "usage: chatlake demo ", "chatlake demo: error: --deliveries must be at least 1"),
    (["query", "no_such_file.sql"], "usage: chatlake query ", "chatlake query: error: no such SQL file"),
    (["serve", "--port", "99999"], "usage: chatlake serve ", "'99999' is not a port: use 1 to 65535"),
])
def test_a_usage_error_shows_the_verbs_usage_and_the_closest_name(argv, usage, message, tmp_path, capsys):
    (tmp_path / "lake").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and message in err.strip().splitlines()[-1] and "Traceback" not in err


# --- --format json, and tables in files ---------------------------------------------------------------------------


def test_status_etl_and_backfill_print_one_json_document(tmp_path, capsys):
    from chatlake.local import synthetic

    lake = runtime.storage(str(tmp_path / "lake"))
    yesterday = TODAY - timedelta(days=1)
    batch = synthetic.deliveries(20, seed=3, day=yesterday)
    synthetic.store(lake, batch)

    assert cli.main(["status", "--days", "3", "--format", "json"]) == 1  # yesterday is behind: exit code unchanged
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["behind"] == [str(yesterday)] and doc["lake"] == lake.url
    assert [d["day"] for d in doc["days"]] == [str(TODAY - timedelta(days=i)) for i in range(3)]
    assert doc["days"][1]["behind"] is True and doc["days"][1]["reason"] and doc["days"][1]["telegram"] + \
        doc["days"][1]["whatsapp"] == len(batch)
    assert "chatlake backfill --start" in captured.err  # the hint stays on stderr

    assert cli.main(["etl", "--date", str(yesterday), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["day"], doc["deliveries"], doc["warnings"]) == (str(yesterday), len(batch), [])
    assert doc["messages"] == len(synthetic.expected_rows(batch)[0])

    start = yesterday - timedelta(days=1)
    assert cli.main(["backfill", "--start", str(start), "--end", str(yesterday), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["day"] for d in doc["days"]] == [str(start), str(yesterday)]
    assert doc["total"]["deliveries"] == len(batch) and doc["behind_after"] == []

    assert cli.main(["status", "--days", "3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["behind"] == []


def test_a_table_written_to_a_file_is_plain_aligned_text(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATALAKE_URL": str(tmp_path / "lake"), "XDG_CACHE_HOME": str(tmp_path)}
    out_file = tmp_path / "etl.txt"
    with out_file.open("w") as f:
        subprocess.run([sys.executable, "-m", "chatlake", "etl", "--date", str(TODAY)], cwd=PROJECT_DIR, env=env,
                       stdout=f, check=True)
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert not BOX_DRAWING & set("".join(lines)) and "\x1b" not in "".join(lines)
    assert lines[0].startswith(f"ETL {TODAY} on file://")
    assert lines[1].split() == ["day", "deliveries", "messages", "statuses", "rejects", "duplicates", "seconds"]
    assert set(lines[2]) == {"-", " "} and lines[3].split()[:2] == [str(TODAY), "0"]
    assert len(lines[1]) == len(lines[2]) == len(lines[3])  # aligned: numbers right-aligned under their header


def test_plain_table_escapes_chat_content_and_keeps_each_row_one_line():
    from chatlake import ui

    text = ui.plain_table(["name", "n"], [[ui.safe_text("a\x1b[2J\nb"), "3"]], [False, True], title="t")
    assert text == "t\nname         n\n-----------  -\na\\x1b[2J\\nb  3\n"


# --- DATALAKE_URL -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["status"], ["query", "top_chats"], ["report", "--days", "3"]])
def test_a_missing_lake_is_an_error_for_commands_that_read(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATALAKE_URL", "nowhere/lake")  # relative: the message says where it resolved to
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == (f"error: the data lake {tmp_path / 'nowhere' / 'lake'} does not exist: set "
                                       "DATALAKE_URL to your lake, or let the webhooks (make run) or chatlake etl "
                                       "create it\n")
    assert not (tmp_path / "nowhere").exists()  # and reading did not create it


def test_etl_creates_the_lake_it_writes(tmp_path, capsys):
    assert cli.main(["etl", "--date", str(TODAY)]) == 0
    assert (tmp_path / "lake" / "enriched").is_dir()
    assert cli.main(["status", "--days", "1"]) == 0


@pytest.mark.parametrize(("url", "says"), [
    ("~/lake", "~ is not expanded here: use an absolute path or $HOME/lake"),
    ("s3:/x", "is not a valid s3:// URL: use s3://bucket[/prefix], file:///abs/path or a folder path"),
    ("s3://", "has no bucket: use s3://bucket[/prefix]"),
    ("gs://bucket/lake", "uses gs://, which is not supported"),
])
@pytest.mark.parametrize("verb", [["status"], ["etl"], ["query", "top_chats"], ["ddl"]])
def test_a_malformed_lake_url_is_one_line(url, says, verb, monkeypatch, capsys):
    monkeypatch.setenv("DATALAKE_URL", url)
    assert cli.main(verb) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: DATALAKE_URL {url!r}") and says in err and err.count("\n") == 1


def test_a_malformed_lake_url_prints_no_traceback_from_a_real_process(tmp_path):
    for url in ("~/lake", "s3:/x", "gs://b"):
        env = {"PATH": "/usr/bin:/bin", "DATALAKE_URL": url, "XDG_CACHE_HOME": str(tmp_path)}
        for argv in (["status"], ["backfill", "--start", str(TODAY), "--end", str(TODAY)]):
            out = subprocess.run([sys.executable, "-m", "chatlake", *argv], cwd=tmp_path, env=env,
                                 capture_output=True, text=True)
            assert out.returncode == 1 and out.stdout == "" and "Traceback" not in out.stderr
            assert out.stderr.startswith(f"error: DATALAKE_URL {url!r}") and out.stderr.count("\n") == 1
    assert not (tmp_path / "~").exists() and not (tmp_path / "s3:").exists()  # no folder with the odd name
