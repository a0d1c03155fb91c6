"""`report`: one self-contained HTML file built from the analytics pack, rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from chalicelib import etl
from chalicelib.storage import FolderStorage
from chatlake import cli, query, report
from chatlake.local import synthetic
from chatlake.report import charts

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory) -> Path:
    """Four days of synthetic traffic, through the real ETL."""
    root = tmp_path_factory.mktemp("report") / "lake"
    storage = FolderStorage(root)
    for back in range(1, 5):
        day = TODAY - timedelta(days=back)
        synthetic.store(storage, synthetic.deliveries(400, seed=back, day=day))
        etl.run_day(storage, day)
    return root


@pytest.fixture
def report_html(lake_dir, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DATALAKE_URL", str(lake_dir))
    out = tmp_path / "report.html"
    assert cli.main(["report", "--days", "7", "--out", str(out)]) == 0
    return out


def test_the_report_is_one_offline_file_with_every_chart(report_html):
    html = report_html.read_text()
    assert html.count("<svg") == 5  # per day, busiest hours, types, first response, funnel
    for title in ("Messages per day", "Busiest hours (UTC)", "Message types", "First-response time on WhatsApp",
                  "WhatsApp delivery funnel", "Top 20 chats", "Failures by error code"):
        assert f"<h2>{title}" in html
    assert not re.search(r"<script|<link|\bsrc=|@import|url\(", html)  # nothing to fetch, nothing to run
    assert str(TODAY - timedelta(days=6)) in html and str(TODAY) in html


def test_the_report_counts_match_the_lake(report_html, lake_dir):
    engine = query.DuckDBEngine(query.connect_duckdb(), FolderStorage(lake_dir))
    total = engine.run("SELECT count(*) AS n FROM messages WHERE NOT is_edit").records()[0]["n"]
    assert f"<b>{total:,}</b>messages" in report_html.read_text()


def test_days_limit_the_period(lake_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(lake_dir))
    out = tmp_path / "two.html"
    assert cli.main(["report", "--days", "2", "--out", str(out)]) == 0
    html = out.read_text()
    yesterday = TODAY - timedelta(days=1)
    engine = query.DuckDBEngine(query.connect_duckdb(), FolderStorage(lake_dir))
    only = engine.run(f"SELECT count(*) AS n FROM messages WHERE NOT is_edit AND dt >= '{yesterday}'").records()
    assert f"<b>{only[0]['n']:,}</b>messages" in html


def test_since_day_filters_every_table_read():
    text = query.since_day("SELECT count(*) FROM messages m JOIN statuses ON m.message_id = statuses.message_id",
                         TODAY)
    assert text.count(f"dt >= '{TODAY}'") == 2 and " AS m " in text


def test_an_empty_lake_gives_a_report_that_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()  # an empty lake; a missing one is an error (tests/unit/test_cli_usage.py)
    out = tmp_path / "empty.html"
    assert cli.main(["report", "--out", str(out)]) == 0
    assert out.read_text().count("no data for this period") >= 5


def test_charts_escape_text():
    svg = charts.horizontal_bars([("<b>&", 3.0)], "t")
    assert "&lt;b&gt;&amp;" in svg and "<b>" not in svg


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_report_renders_in_headless_chromium(report_html, tmp_path):
    """Debian's chromium, as the CI installs it: a screenshot that shows the charts, and no console errors."""
    browser = chromium()
    if browser is None:
        if os.environ.get("CHATLAKE_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it and runs this test")
    shot = tmp_path / "report.png"
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                          "--hide-scrollbars", "--window-size=900,2400", f"--screenshot={shot}",
                          report_html.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Failed to load" in line]
    assert console == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (900, 2400)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, bars, shading: not a blank page
    present = {rgb for _, rgb in colors}
    for hex_color in charts.PALETTE[:4]:  # the chart colours are on screen
        assert tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5)) in present
    white = sum(n for n, rgb in colors if rgb == (255, 255, 255))
    assert white < 0.9 * image.size[0] * image.size[1]


def test_a_period_where_no_whatsapp_message_was_answered(tmp_path):
    """The report on DuckDB over unanswered messages only: it used to stop with a TypeError (int(None))."""
    from tests.integration.test_sql import DAYS, unanswered_lake

    engine = query.DuckDBEngine(query.connect_duckdb(), unanswered_lake(tmp_path / "lake"))
    html = report.build(engine, 3, today=DAYS[0] + timedelta(days=1))
    assert "First-response time on WhatsApp (average —)" in html
    assert re.search(r">not answered</text>.*?>2 messages</text>", html)
    assert re.search(r">within 5 min</text>.*?>0 messages</text>", html)


def test_report_sections_take_a_null_count_as_zero():
    """Athena or a hand-edited pack file may give NULL for a count of nothing: still a report, never a crash."""
    rows = {"first_response_time": [{"day": "2026-11-23", "inbound": 3, "answered": None, "avg_wait_seconds": None,
                                      "within_5_min": None, "within_1_hour": None}],
            "delivery_funnel": [{"day": "2026-11-23", "sent": 2, "delivered": None, "read": None, "failed": None}],
            "messages_per_day": [{"day": "2026-11-23", "source": "whatsapp", "messages": None}]}
    out = report.sections(lambda name: rows.get(name, []), lambda name: name)
    waits = next(s for s in out if s.title.startswith("First-response"))
    assert "(average —)" in waits.title and ">3 messages</text>" in waits.body
    assert ">delivered</text>" in next(s for s in out if s.title == "WhatsApp delivery funnel").body


def section(html: str, title_start: str) -> str:
    """One <section> of the report, from its <h2> on."""
    start = html.index(f"<h2>{title_start}")
    return html[start:html.index("</section>", start)]


def test_top_chats_title_counts_the_rows_shown(report_html):
    top = section(report_html.read_text(), "Top ")
    shown = top.count("<tr>") - 1  # the header row
    assert re.match(r"<h2>Top (\d+) chats</h2>", top).group(1) == str(shown)
    assert shown == 20  # what the analytics file asks for, all of it drawn


def test_message_types_draw_the_top_and_one_other_bar_for_the_rest():
    rows = [{"source": "telegram", "message_type": f"type{i:02d}", "messages": 40 - i} for i in range(27)]
    out = report.sections(lambda name: rows if name == "message_types" else [], lambda name: name)
    body = next(s for s in out if s.title == "Message types").body
    labels = re.findall(r'text-anchor="end" fill="#333">([^<]+)</text>', body)
    values = [int(v) for v in re.findall(r'fill="#333">(\d+)</text>', body)]
    rest = 27 - report.TOP_TYPES
    assert labels == [f"telegram: type{i:02d}" for i in range(report.TOP_TYPES)] + [f"other ({rest} types)"]
    assert values[-1] == sum(40 - i for i in range(report.TOP_TYPES, 27))
    assert sum(values) == sum(r["messages"] for r in rows)  # the bars add up to every message
    one_more = rows[:report.TOP_TYPES + 1]  # one type more than the top: drawn, not folded into "other (1 type)"
    out = report.sections(lambda name: one_more if name == "message_types" else [], lambda name: name)
    assert "other" not in next(s for s in out if s.title == "Message types").body


def test_one_of_each_is_singular(tmp_path, monkeypatch, capsys):
    """A lake with one message: "1 message", "Top 1 chat", never "1 messages"."""
    storage = FolderStorage(tmp_path / "lake")
    body = synthetic.samples(int(datetime.now(UTC).timestamp()))["telegram"]
    synthetic.store(storage, [synthetic.Delivery("telegram", body, day=TODAY)])
    etl.run_day(storage, TODAY)
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    out = tmp_path / "one.html"
    assert cli.main(["report", "--days", "1", "--out", str(out)]) == 0
    assert "the last 1 day)" in capsys.readouterr().out
    html = out.read_text()
    assert "<b>1</b>message</span>" in html and "<b>0</b>edits</span>" in html
    assert "<h2>Top 1 chat</h2>" in html
    assert not re.search(r"(?<![\d.,])1 (messages|chats|types|edits|days|deliveries)\b", html)
    funnel = charts.horizontal_bars([("sent", 1), ("read", 0), ("delivered", 2.5)], "t", noun="message")
    assert ">1 message</text>" in funnel and ">0 messages</text>" in funnel and ">2.5 messages</text>" in funnel


def test_section_descriptions_are_for_analysts(report_html):
    """What each section answers, not how its SQL works (that note belongs next to the SQL)."""
    questions = re.findall(r'<p class="question">([^<]*)</p>', report_html.read_text())
    assert len(questions) == 8
    for text in questions:
        assert not re.search(r"running minimum|one pass|window|partition by|newest to oldest", text, re.I), text


def test_the_font_stack_names_emoji_fonts(report_html):
    """Chat titles carry emoji: the page and the charts name an emoji font after the text fonts, so a machine
    that has one shows the emoji, not a box."""
    html = report_html.read_text()
    style = html[html.index("<style>"):html.index("</style>")]
    for font in ('"Apple Color Emoji"', '"Segoe UI Emoji"', '"Noto Color Emoji"'):
        assert font in style and font in charts.FONT
    assert html.count(f"font-family='{charts.FONT_FAMILY}'") == 5  # every chart
    assert "Clientes VIP 🌟" in html  # as text, for the font to draw
