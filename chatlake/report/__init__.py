"""`report`: one self-contained HTML file with charts of the chat traffic, built from the `sql/analytics`
files on either engine, so an analyst can look at it without writing SQL (and opens it offline)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

from chatlake import query

from . import charts

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
HOURS = [f"{h:02d}" for h in range(24)]

Run = Callable[[str], list[dict[str, Any]]]  # analytics name -> rows as dicts
TOP_TYPES = 12  # message types drawn one by one; the rest share one "other" bar


#: The media table per type (issue 12): not in the analytics pack, whose queries are over messages and statuses.
MEDIA_BY_TYPE = "media_by_type"
MEDIA_QUESTION = ("How many photos, voice notes, documents, videos ... the messages carried, how many of them are "
                  "stored in the lake (and how many megabytes), still pending, or lost (failed, too large, expired, "
                  "disabled).")
MEDIA_SQL = """
SELECT source, message_type, count(*) AS files,
       coalesce(count_if(status = 'stored'), 0) AS stored,
       coalesce(count_if(status = 'pending'), 0) AS pending,
       coalesce(count_if(status NOT IN ('stored', 'pending')), 0) AS not_stored,
       round(CAST(coalesce(sum(CASE WHEN status = 'stored' THEN bytes END), 0) AS double) / 1048576, 2) AS stored_mb
FROM media
GROUP BY source, message_type
ORDER BY files DESC, source, message_type
"""


@dataclass
class Section:
    title: str
    question: str  # what it answers, from the SQL file's own comment
    body: str  # an SVG chart or a table


def _series_by_day(rows: list[dict[str, Any]], value: str) -> tuple[list[str], dict[str, list[float]]]:
    days = sorted({r["day"] for r in rows})
    sources = sorted({r["source"] for r in rows})
    cells = {(r["day"], r["source"]): float(r[value] or 0) for r in rows}
    return days, {s: [cells.get((d, s), 0) for d in days] for s in sources}


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Every row the query gave (the analytics file's own LIMIT says how many), so a title that counts them
    and the table agree."""
    if not rows:
        return '<p class="empty">no data for this period</p>'

    def cell(column: str, v: Any) -> str:
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%d %H:%M")
        if isinstance(v, int) and not column.endswith(("_id", "_code")):
            return f"{v:,}"  # counts get thousands separators, identifiers and codes do not
        return escape("" if v is None else str(v))

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(c, r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _total(rows: list[dict[str, Any]], column: str) -> int:
    """The sum of a count column. A NULL count is a count of nothing: an engine may give NULL where nothing
    qualified (DuckDB's count_if over only NULL conditions), and the report must still come out."""
    return sum(int(r[column] or 0) for r in rows)


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def top_and_other(items: dict[str, float], n: int) -> list[tuple[str, float]]:
    """The `n` largest items, largest first, and one "other" item summing the rest, labelled with how many it
    holds, so that the bars add up to the whole. All of them when one more would do."""
    ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= n + 1:
        return ranked
    rest = ranked[n:]
    return [*ranked[:n], (f"other ({charts.counted(len(rest), 'type')})", sum(v for _, v in rest))]


def sections(run: Run, describe: Callable[[str], str]) -> list[Section]:
    """The report's sections, in order; `run` gives each analytics file's rows."""
    out = []
    per_day = run("messages_per_day")
    days, series = _series_by_day(per_day, "messages")
    out.append(Section("Messages per day", describe("messages_per_day"),
                       charts.stacked_bars([d[5:] for d in days], series, "Messages per day and source")))

    busiest = run("busiest_hours")
    cells = {(WEEKDAYS[int(r["weekday"]) - 1], f"{int(r['hour_utc']):02d}"): float(r["messages"]) for r in busiest}
    out.append(Section("Busiest hours (UTC)", describe("busiest_hours") + " Shaded: the three busiest hours of "
                       "each weekday.", charts.heatmap(WEEKDAYS, HOURS, cells, "Busiest hours per weekday")))

    types: dict[str, float] = defaultdict(float)
    for r in run("message_types"):
        types[f"{r['source']}: {r['message_type']}"] += float(r["messages"])
    out.append(Section("Message types", describe("message_types"),
                       charts.horizontal_bars(top_and_other(types, TOP_TYPES), "Message types")))

    media = run(MEDIA_BY_TYPE)
    out.append(Section("Media per type and size", MEDIA_QUESTION,
                       _table(media, ["source", "message_type", "files", "stored", "pending", "not_stored",
                                      "stored_mb"])))

    waits = run("first_response_time")
    inbound, answered = _total(waits, "inbound"), _total(waits, "answered")
    within_5, within_60 = _total(waits, "within_5_min"), _total(waits, "within_1_hour")
    buckets = [("within 5 min", within_5), ("5 to 60 min", within_60 - within_5), ("over 1 hour", answered - within_60),
               ("not answered", inbound - answered)]
    weighted = sum(float(r["avg_wait_seconds"] or 0) * int(r["answered"] or 0) for r in waits)
    average = _minutes(weighted / answered if answered else None)
    out.append(Section(f"First-response time on WhatsApp (average {average})", describe("first_response_time"),
                       charts.horizontal_bars(buckets if inbound else [], "First-response time", noun="message")))

    funnel = run("delivery_funnel")
    stages = [(stage, _total(funnel, stage)) for stage in ("sent", "delivered", "read", "failed")]
    out.append(Section("WhatsApp delivery funnel", describe("delivery_funnel"),
                       charts.horizontal_bars(stages if funnel else [], "Delivery funnel", noun="message")))

    chats = run("top_chats")
    out.append(Section(f"Top {charts.counted(len(chats), 'chat')}" if chats else "Top chats", describe("top_chats"),
                       _table(chats, ["source", "chat_type", "chat_title", "chat_id", "messages", "senders",
                                      "last_message_at"])))
    out.append(Section("Failures by error code", describe("failures_by_error_code"), _table(
        run("failures_by_error_code"), ["error_code", "error_title", "failures", "recipients", "last_failure_at"])))
    return out


STYLE = (f"body {{ font-family: {charts.FONT_FAMILY};\n"
         "       margin: 2rem auto; max-width: 840px; color: #222; background: #fff; }" """
h1 { margin-bottom: .2rem; } .meta { color: #666; margin-top: 0; }
section { margin: 2.2rem 0; } h2 { font-size: 1.15rem; margin-bottom: .3rem; }
.question { color: #555; margin-top: 0; font-size: .92rem; }
table { border-collapse: collapse; font-size: .85rem; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; }
.empty { color: #888; } .totals span { display: inline-block; margin-right: 1.6rem; }
.totals b { font-size: 1.4rem; display: block; }
""")

# The totals above the charts: (column of messages_per_day, its label for one, for any other count).
TOTALS = [("messages", "message", "messages"), ("inbound", "inbound", "inbound"), ("outbound", "outbound", "outbound"),
          ("edits", "edit", "edits")]


def render(sections_: list[Section], first_day: date, last_day: date, source: str, totals: dict[str, int]) -> str:
    parts = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>chatlake report '
             f'{first_day} to {last_day}</title><style>{STYLE}</style></head><body>',
             f"<h1>Chat traffic, {first_day} to {last_day}</h1>",
             f'<p class="meta">chatlake report from {escape(source)}, generated '
             f'{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Times are UTC.</p>',
             '<p class="totals">' + "".join(f"<span><b>{totals[k]:,}</b>{escape(charts.plural(totals[k], one, many))}"
                                           "</span>" for k, one, many in TOTALS) + "</p>"]
    for s in sections_:
        parts.append(f"<section><h2>{escape(s.title)}</h2><p class=\"question\">{escape(s.question)}</p>"
                     f"{s.body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build(engine: query.Engine, days: int, today: date | None = None,
          source: str = "") -> str:
    """The report's HTML over the last `days` days (today included)."""
    last_day = today or datetime.now(UTC).date()
    first_day = last_day - timedelta(days=days - 1)
    files = {f.name: f for f in query.analytics()}
    results: dict[str, list[dict[str, Any]]] = {}

    def run(name: str) -> list[dict[str, Any]]:
        if name not in results:
            sql = MEDIA_SQL if name == MEDIA_BY_TYPE else files[name].statement
            results[name] = engine.run(query.since_day(sql, first_day)).records()
        return results[name]

    def describe(name: str) -> str:
        return files[name].description

    per_day = run("messages_per_day")
    totals = {k: _total(per_day, k) for k, _, _ in TOTALS}
    return render(sections(run, describe), first_day, last_day, source, totals)
