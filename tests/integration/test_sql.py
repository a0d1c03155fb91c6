"""SQL on DuckDB over a lake built by the real ETL: every sql/ file against answers computed in Python from the
Parquet rows, the views' semantics (edits, status progress), empty tables, the CLI's formats and errors, the DDL."""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from chalicelib import etl, layout
from chalicelib.schema import ATHENA_TYPES, COLUMNS
from chalicelib.storage import FolderStorage, S3Storage
from chatlake import cli, query
from chatlake.local import synthetic
from tests.conftest import PROJECT_DIR

DAYS = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]  # a Monday, Tuesday, Wednesday
CONTACT = "34999000111"


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC).timestamp())


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def wa(value: dict[str, Any], field: str = "messages") -> bytes:
    change = {"field": field, "value": {"messaging_product": "whatsapp", "metadata": dict(synthetic.METADATA), **value}}
    return synthetic.whatsapp_bytes({"object": "whatsapp_business_account",
                                     "entry": [{"id": synthetic.WABA_ID, "changes": [change]}]})


def status(message_id: str, state: str, when: int, code: int | None = None, title: str = "") -> bytes:
    item: dict[str, Any] = {"id": message_id, "status": state, "timestamp": str(when), "recipient_id": CONTACT}
    if code is not None:
        item["errors"] = [{"code": code, "title": title, "message": title}]
    return wa({"statuses": [item]})


def telegram(update_id: int, kind: str, text: str, edit_date: int | None = None) -> bytes:
    message: dict[str, Any] = {"message_id": 9, "from": {"id": 555, "is_bot": False, "first_name": "Ada"},
                               "chat": {"id": 555, "first_name": "Ada", "type": "private"},
                               "date": at(DAYS[0], 10), "text": text}
    if edit_date:
        message["edit_date"] = edit_date
    return synthetic.telegram_bytes({"update_id": update_id, kind: message})


def handmade() -> list[tuple[str, date, bytes]]:
    """Deliveries whose effect on the views is known exactly: a message edited on two later days, a WhatsApp
    message revoked the next day, and statuses arriving in every order, some of them unknown to chatlake."""
    d1, d2, d3 = DAYS
    inbound = {"from": CONTACT, "id": "wamid.HAND1", "timestamp": str(at(d1, 12)), "type": "text",
               "text": {"body": "hola"}}
    revoke = {"from": CONTACT, "id": "wamid.HAND1-revoke", "timestamp": str(at(d2, 9)), "type": "revoke",
              "revoke": {"original_message_id": "wamid.HAND1"}}
    contacts = [{"profile": {"name": "Ana"}, "wa_id": CONTACT}]
    out = [
        ("telegram", d1, telegram(1, "message", "v1")),
        ("telegram", d2, telegram(2, "edited_message", "v2", at(d2, 9))),
        ("telegram", d3, telegram(3, "edited_message", "v3", at(d3, 8))),
        ("whatsapp", d1, wa({"contacts": contacts, "messages": [inbound]})),
        ("whatsapp", d2, wa({"contacts": contacts, "messages": [revoke]})),
    ]
    statuses = [
        ("wamid.S-A", [("sent", d1, at(d1, 12, 5)), ("delivered", d1, at(d1, 12, 6)), ("read", d1, at(d1, 12, 10))]),
        ("wamid.S-B", [("sent", d1, at(d1, 13)), ("failed", d1, at(d1, 13, 1), 131026, "Message undeliverable")]),
        ("wamid.S-C", [("sent", d1, at(d1, 14)), ("deleted", d1, at(d1, 14, 30))]),
        ("wamid.S-D", [("deleted", d2, at(d2, 8))]),
        ("wamid.S-E", [("delivered", d2, at(d2, 10)), ("read", d2, at(d2, 10, 5)), ("played", d2, at(d2, 10, 7))]),
        ("wamid.S-F", [("read", d2, at(d2, 11)), ("delivered", d2, at(d2, 11, 1))]),
        ("wamid.S-G", [("read", d1, at(d1, 15)), ("failed", d3, at(d3, 9), 131049, "Ecosystem engagement")]),
        ("wamid.S-H", [("sent", d1, at(d1, 16)), ("read", d2, at(d2, 7))]),
        ("wamid.S-I", [("sent", d2, at(d2, 16)), ("failed", d2, at(d2, 16, 2), 131047, "Re-engagement message")]),
    ]
    for message_id, items in statuses:
        for state, day, when, *error in items:
            out.append(("whatsapp", day, status(message_id, state, when, *error)))
    return out


FURTHEST = {"wamid.S-A": "read", "wamid.S-B": "failed", "wamid.S-C": "sent", "wamid.S-D": "deleted",
            "wamid.S-E": "played", "wamid.S-F": "read", "wamid.S-G": "failed", "wamid.S-H": "read",
            "wamid.S-I": "failed"}


def build_lake(root: Path, per_day: int) -> FolderStorage:
    storage = FolderStorage(root)
    for i, day in enumerate(DAYS):
        synthetic.store(storage, synthetic.deliveries(per_day, seed=70 + i, day=day))
    for source, day, body in handmade():
        storage.put(layout.raw_key(source, day, body), body)
    results = etl.run_days(storage, DAYS)
    assert all(r.rejects == 0 and r.messages > 0 for r in results)
    return storage


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sql") / "lake"
    build_lake(root, per_day=500)
    return root


@pytest.fixture(scope="module")
def engine(lake_dir: Path) -> query.DuckDBEngine:
    return query.DuckDBEngine(query.connect_duckdb(), FolderStorage(lake_dir))


@pytest.fixture(autouse=True)
def translation_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's translation cache goes to a temporary folder, never the developer's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def lake_rows(root: Path, table: str) -> list[dict[str, Any]]:
    """The table as the ETL wrote it (pyarrow, not SQL), with `dt` from the folder name."""
    rows = []
    for path in sorted(root.glob(f"enriched/{table}/dt=*/*.parquet")):
        dt = path.parent.name.removeprefix("dt=")
        rows += [{**{k: naive(v) for k, v in r.items()}, "dt": dt} for r in pq.read_table(path).to_pylist()]
    return rows


def records(result: query.Result) -> list[dict[str, Any]]:
    return result.records()


# --- what each analytics file should answer, computed in Python --------------------------------------------------


def expect_messages_per_day(m: list[dict], s: list[dict]) -> list[dict]:
    out: dict[tuple, Counter] = defaultdict(Counter)
    for r in m:
        c = out[(r["dt"], r["source"])]
        c["edits" if r["is_edit"] else "messages"] += 1
        if not r["is_edit"]:
            c["inbound" if r["direction"] == "in" else "outbound"] += 1
    return [{"day": d, "source": src, "messages": c["messages"], "inbound": c["inbound"],
             "outbound": c["outbound"], "edits": c["edits"]} for (d, src), c in sorted(out.items())]


def expect_active_chats_and_senders(m: list[dict], s: list[dict]) -> list[dict]:
    chats, senders = defaultdict(set), defaultdict(set)
    for r in m:
        chats[(r["dt"], r["source"])].add(r["chat_id"])
        if r["direction"] == "in" and r["sender_id"] is not None:
            senders[(r["dt"], r["source"])].add(r["sender_id"])
    return [{"day": d, "source": src, "active_chats": len(chats[(d, src)]),
             "active_senders": len(senders[(d, src)])} for d, src in sorted(chats)]


def expect_busiest_hours(m: list[dict], s: list[dict]) -> list[dict]:
    counts = Counter((r["sent_at"].isoweekday(), r["sent_at"].strftime("%A"), r["sent_at"].hour)
                     for r in m if r["direction"] == "in" and not r["is_edit"])
    out = []
    for weekday in sorted({k[0] for k in counts}):
        hours = sorted(((n, k) for k, n in counts.items() if k[0] == weekday), key=lambda x: (-x[0], x[1][2]))[:3]
        out += [{"weekday": weekday, "weekday_name": k[1], "rank_in_weekday": i, "hour_utc": k[2], "messages": n}
                for i, (n, k) in enumerate(hours, 1)]
    return out


def expect_message_types(m: list[dict], s: list[dict]) -> list[dict]:
    counts = Counter((r["source"], r["message_type"]) for r in m if not r["is_edit"])
    totals = Counter(r["source"] for r in m if not r["is_edit"])
    rows = [{"source": src, "message_type": t, "messages": n, "share_pct": pytest.approx(100 * n / totals[src],
                                                                                         abs=0.006)}
            for (src, t), n in counts.items()]
    return sorted(rows, key=lambda r: (r["source"], -r["messages"], r["message_type"]))


def expect_top_chats(m: list[dict], s: list[dict]) -> list[dict]:
    chats: dict[tuple, list[dict]] = defaultdict(list)
    for r in m:
        if not r["is_edit"]:
            chats[(r["source"], r["chat_id"])].append(r)
    rows = []
    for (src, chat), items in chats.items():
        titles = [r["chat_title"] for r in items if r["chat_title"] is not None]
        rows.append({"source": src, "chat_id": chat, "chat_type": max(r["chat_type"] for r in items),
                     "chat_title": max(titles) if titles else None, "messages": len(items),
                     "senders": len({r["sender_id"] for r in items if r["direction"] == "in" and r["sender_id"]}),
                     "first_message_at": min(r["sent_at"] for r in items),
                     "last_message_at": max(r["sent_at"] for r in items)})
    return sorted(rows, key=lambda r: (-r["messages"], r["source"], r["chat_id"]))[:20]


def expect_first_response_time(m: list[dict], s: list[dict]) -> list[dict]:
    replies: dict[str, list[datetime]] = defaultdict(list)
    for r in s:
        if r["status"] == "sent":
            replies[r["recipient_id"]].append(r["status_at"])
    for r in m:
        if r["source"] == "whatsapp" and r["direction"] == "out" and not r["is_edit"]:
            replies[r["chat_id"]].append(r["sent_at"])
    waits: dict[str, list[float | None]] = defaultdict(list)
    for r in m:
        if (r["source"] == "whatsapp" and r["direction"] == "in" and not r["is_edit"]
                and r["message_type"] not in ("reaction", "system")):
            later = [t for t in replies[r["chat_id"]] if t >= r["sent_at"]]
            waits[r["dt"]].append((min(later) - r["sent_at"]).total_seconds() if later else None)
    out = []
    for day, items in sorted(waits.items()):
        answered = [w for w in items if w is not None]
        out.append({"day": day, "inbound": len(items), "answered": len(answered),
                    "avg_wait_seconds": pytest.approx(sum(answered) / len(answered), abs=0.051) if answered else None,
                    "within_5_min": sum(w <= 300 for w in answered), "within_1_hour": sum(w <= 3600 for w in answered),
                    "longest_wait_seconds": max(answered, default=None)})
    return out


RANK = {"failed": 4, "read": 3, "played": 3, "delivered": 2, "sent": 1}


def furthest(s: list[dict]) -> dict[str, dict]:
    """Each message's furthest status, by the rule stated in the issue (not by reading the view)."""
    best: dict[str, dict] = {}
    for r in s:
        key = (RANK.get(r["status"], 0), r["status_at"], r["status"])
        if r["message_id"] not in best or key > best[r["message_id"]]["key"]:
            best[r["message_id"]] = {**r, "key": key}
    return best


def expect_delivery_funnel(m: list[dict], s: list[dict]) -> list[dict]:
    first: dict[str, str] = {}
    for r in s:
        first[r["message_id"]] = min(first.get(r["message_id"], r["dt"]), r["dt"])
    days: dict[str, Counter] = defaultdict(Counter)
    for message_id, r in furthest(s).items():
        c = days[first[message_id]]
        c["messages"] += 1
        c["sent"] += r["status"] in ("sent", "delivered", "read", "played")
        c["delivered"] += r["status"] in ("delivered", "read", "played")
        c["read"] += r["status"] in ("read", "played")
        c["failed"] += r["status"] == "failed"
    return [{"day": d, **{k: c[k] for k in ("messages", "sent", "delivered", "read", "failed")},
             "delivered_pct": pytest.approx(100 * c["delivered"] / c["sent"], abs=0.051) if c["sent"] else None,
             "read_pct": pytest.approx(100 * c["read"] / c["delivered"], abs=0.051) if c["delivered"] else None}
            for d, c in sorted(days.items())]


def expect_failures_by_error_code(m: list[dict], s: list[dict]) -> list[dict]:
    codes: dict[int, list[dict]] = defaultdict(list)
    for r in s:
        if r["status"] == "failed":
            codes[r["error_code"]].append(r)
    rows = [{"error_code": code, "error_title": max(r["error_title"] for r in items), "failures": len(items),
             "recipients": len({r["recipient_id"] for r in items}),
             "first_failure_at": min(r["status_at"] for r in items),
             "last_failure_at": max(r["status_at"] for r in items)} for code, items in codes.items()]
    return sorted(rows, key=lambda r: (-r["failures"], r["error_code"]))


EXPECTED = {name.removeprefix("expect_"): fn for name, fn in globals().items() if name.startswith("expect_")}


def test_every_analytics_file_has_a_check_and_says_what_it_answers():
    pack = query.analytics()
    assert {f.name for f in pack} == set(EXPECTED)
    assert len(pack) == 8
    for f in pack:
        assert f.comment.startswith("-- ") and len(f.description) > 60, f.name
        assert isinstance(sqlglot.parse_one(f.statement, read="athena"), exp.Query)  # one Athena query each


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_analytics_query_matches_python(name, engine, lake_dir):
    messages, statuses = lake_rows(lake_dir, "messages"), lake_rows(lake_dir, "statuses")
    want = EXPECTED[name](messages, statuses)
    got = records(engine.run(query.resolve_sql(name)))
    assert want, f"the test lake gives {name} nothing to count"
    assert got == want


def test_the_lake_exercises_what_the_queries_distinguish(lake_dir):
    messages, statuses = lake_rows(lake_dir, "messages"), lake_rows(lake_dir, "statuses")
    assert {r["source"] for r in messages} == {"telegram", "whatsapp"}
    assert {r["direction"] for r in messages} == {"in", "out"}
    assert sum(r["is_edit"] for r in messages) > 10
    assert {"reaction", "revoke", "image", "photo", "service"} <= {r["message_type"] for r in messages}
    assert {"sent", "delivered", "read", "played", "failed", "deleted"} <= {r["status"] for r in statuses}
    assert len({r["error_code"] for r in statuses if r["status"] == "failed"}) >= 3


def test_first_response_counts_the_reply_at_exactly_five_minutes(engine):
    result = records(engine.run(
        "SELECT * FROM messages WHERE message_id = 'wamid.HAND1' AND NOT is_edit"))
    assert len(result) == 1 and result[0]["sent_at"] == utc(at(DAYS[0], 12))
    # its reply is wamid.S-A's `sent` at 12:05:00 (300 s): the one hand-made wait, counted within 5 minutes
    day = next(r for r in records(engine.run(query.resolve_sql("first_response_time"))) if r["day"] == str(DAYS[0]))
    assert day["within_5_min"] >= 1


def unanswered_lake(root: Path) -> FolderStorage:
    """WhatsApp messages nobody answered, on DAYS[0]: every conditional count in the pack has only NULL waits."""
    storage = FolderStorage(root)
    contacts = [{"profile": {"name": "Ana"}, "wa_id": CONTACT}]
    for n, hh in enumerate((9, 11)):
        inbound = {"from": CONTACT, "id": f"wamid.ALONE{n}", "timestamp": str(at(DAYS[0], hh)), "type": "text",
                   "text": {"body": "anyone there?"}}
        body = wa({"contacts": contacts, "messages": [inbound]})
        storage.put(layout.raw_key("whatsapp", DAYS[0], body), body)
    assert etl.run_day(storage, DAYS[0]).messages == 2
    return storage


def test_counts_are_zero_when_no_message_was_answered(tmp_path, monkeypatch, capsys):
    """count_if over only NULLs is NULL on DuckDB (0 on Athena): the pack must say 0 on both."""
    storage = unanswered_lake(tmp_path / "lake")
    engine = query.DuckDBEngine(query.connect_duckdb(), storage)
    assert records(engine.run(query.resolve_sql("first_response_time"))) == [
        {"day": str(DAYS[0]), "inbound": 2, "answered": 0, "avg_wait_seconds": None, "within_5_min": 0,
         "within_1_hour": 0, "longest_wait_seconds": None}]
    monkeypatch.setenv("DATALAKE_URL", str(storage.root))
    assert cli.main(["query", "first_response_time", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"{DAYS[0]},2,0,,0,0,"


def test_every_conditional_count_in_the_pack_defaults_to_zero():
    """The pattern, not just the one query: a count_if not wrapped in coalesce(..., 0) is NULL on DuckDB for a
    group where its condition is NULL throughout."""
    for f in query.analytics():
        for node in sqlglot.parse_one(f.statement, read="athena").find_all(exp.CountIf):
            parent = node.parent
            assert isinstance(parent, exp.Coalesce) and parent.expressions[0].sql() == "0", (f.name, node.sql())


# --- the views --------------------------------------------------------------------------------------------------


def test_messages_latest_keeps_the_newest_version_of_each_message(engine, lake_dir):
    rows = lake_rows(lake_dir, "messages")
    newest: dict[tuple, dict] = {}
    for r in rows:
        key = (r["edited_at"] is not None, r["edited_at"] or datetime.min, r["dt"], r["raw_key"])
        k = (r["source"], r["message_id"])
        if k not in newest or key > newest[k][0]:
            newest[k] = (key, r)
    got = records(engine.run("SELECT * FROM messages_latest ORDER BY source, message_id"))
    assert got == [r for _, (_, r) in sorted(newest.items())]
    assert len(got) == len({(r["source"], r["message_id"]) for r in rows}) < len(rows)

    edited = records(engine.run("SELECT text, edited_at, is_edit, dt FROM messages_latest WHERE message_id = '555:9'"))
    assert edited == [{"text": "v3", "edited_at": utc(at(DAYS[2], 8)), "is_edit": True, "dt": str(DAYS[2])}]
    versions = engine.run("SELECT count(*) FROM messages WHERE message_id = '555:9'").rows
    assert versions == [(3,)]
    revoked = records(engine.run(
        "SELECT message_type, text, is_edit FROM messages_latest WHERE message_id = 'wamid.HAND1'"))
    assert revoked == [{"message_type": "revoke", "text": None, "is_edit": True}]


def test_message_status_latest_ranks_progress_and_failed_wins(engine, lake_dir):
    got = {r["message_id"]: r for r in records(engine.run("SELECT * FROM message_status_latest"))}
    assert {k: got[k]["status"] for k in FURTHEST} == FURTHEST
    assert got["wamid.S-G"]["error_code"] == 131049 and got["wamid.S-G"]["dt"] == str(DAYS[2])
    assert got["wamid.S-H"]["dt"] == str(DAYS[1])  # the read receipt came the next day
    statuses = lake_rows(lake_dir, "statuses")
    want = {k: {c: v for c, v in r.items() if c != "key"} for k, r in furthest(statuses).items()}
    assert got == want
    assert list(next(iter(got.values()))) == [*COLUMNS["statuses"], "dt"]


def test_views_on_a_lake_with_tables_that_have_no_files_yet(tmp_path):
    storage = FolderStorage(tmp_path / "lake")
    batch = synthetic.deliveries(60, seed=3, day=DAYS[0], sources=("telegram",))
    synthetic.store(storage, batch)
    etl.run_day(storage, DAYS[0])
    for table in ("statuses", "rejects"):
        for obj in list(storage.list(f"enriched/{table}/")):
            storage.delete(obj.key)
    engine = query.DuckDBEngine(query.connect_duckdb(), storage)
    for f in query.analytics():  # every file still runs
        engine.run(f.text)
    assert engine.run("SELECT count(*) FROM messages").rows == [(len(synthetic.expected_rows(batch)[0]),)]
    for name, table in (("statuses", "statuses"), ("rejects", "rejects"), ("message_status_latest", "statuses")):
        result = engine.run(f"SELECT * FROM {name}")
        assert result.rows == [] and result.columns == [*COLUMNS[table], "dt"]
    assert engine.run(query.resolve_sql("delivery_funnel")).rows == []
    empty = query.DuckDBEngine(query.connect_duckdb(), FolderStorage(tmp_path / "nothing-yet"))
    assert empty.run(query.resolve_sql("messages_per_day")).rows == []
    assert empty.run("SELECT count(*) FROM messages_latest").rows == [(0,)]


def test_duckdb_views_have_athenas_column_types(engine, tmp_path):
    duck = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "bool": "BOOLEAN", "int": "BIGINT"}
    empty = query.DuckDBEngine(query.connect_duckdb(), FolderStorage(tmp_path))
    for table in query.TABLES:
        want = [(name, duck[kind]) for name, kind in COLUMNS[table].items()] + [("dt", "VARCHAR")]
        for e in (engine, empty):
            e.prepare(table)
            assert [(r[0], r[1]) for r in e.con.execute(f"DESCRIBE {table}").fetchall()] == want


def test_only_the_views_a_query_names_are_created(lake_dir):
    engine = query.DuckDBEngine(query.connect_duckdb(), FolderStorage(lake_dir))
    engine.run("SELECT count(*) FROM message_status_latest")
    assert engine._created == {"statuses", "message_status_latest"}
    engine.run("SELECT 1")  # names nothing: everything, so SHOW TABLES and information_schema see it all
    assert engine._created == {*query.TABLES, *query.VIEWS}
    assert query.names_in("select * from Messages_Latest -- statuses", query.VIEWS + query.TABLES) == {
        "messages_latest", "statuses"}


# --- the CLI: formats, files, errors ------------------------------------------------------------------------------


@pytest.fixture
def local_lake(lake_dir, monkeypatch):
    monkeypatch.setenv("DATALAKE_URL", str(lake_dir))
    return lake_dir


def test_query_csv(local_lake, engine, capsys):
    assert cli.main(["query", "sql/analytics/messages_per_day.sql", "--format", "csv"]) == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    want = engine.run(query.resolve_sql("messages_per_day"))
    assert lines[0] == want.columns
    assert lines[1:] == [[str(v) for v in row] for row in want.rows]


def test_query_json_is_an_array_of_objects_with_iso_timestamps(local_lake, engine, capsys):
    assert cli.main(["query", "top_chats", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = records(engine.run(query.resolve_sql("top_chats")))
    assert len(got) == len(want) == 20
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        assert g["first_message_at"] == w["first_message_at"].isoformat() + "Z"
        assert datetime.fromisoformat(g["last_message_at"]).replace(tzinfo=None) == w["last_message_at"]
        assert g["messages"] == w["messages"] and isinstance(g["messages"], int)
    capsys.readouterr()
    assert cli.main(["query", "SELECT is_edit, dt FROM messages WHERE message_id = '555:9' ORDER BY dt",
                     "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"is_edit": v, "dt": str(d)} for v, d in
                                                   zip((False, True, True), DAYS, strict=True)]


def test_query_table_is_readable_in_a_terminal(local_lake, capsys):
    assert cli.main(["query", "failures_by_error_code"]) == 0
    out = capsys.readouterr().out
    for column in ("error_code", "error_title", "failures", "recipients"):
        assert column in out
    assert "Ecosystem engagement" in out and "131,049" in out and "rows" in out


def test_query_inline_sql_and_an_empty_result(local_lake, capsys):
    assert cli.main(["query", "SELECT source FROM messages WHERE false", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"
    assert cli.main(["query", "SELECT source FROM messages WHERE false", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "source\n"


@pytest.mark.parametrize(("query", "message"), [
    ("SELEC 1", "error: SQL syntax error: Invalid expression / Unexpected token at line 1, column 7"),
    ("SELECT nope FROM messages", "Binder Error"),
    ("SELECT * FROM no_such_table", "Table with name no_such_table does not exist"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("-- nothing", "there is no SQL statement to run"),
])
def test_bad_sql_exits_1_with_the_engines_message(local_lake, capsys, query, message):
    assert cli.main(["query", query]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.startswith("error: ")
    assert "Traceback" not in captured.err


def test_bad_sql_in_a_real_process_prints_no_traceback(local_lake, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATALAKE_URL": str(local_lake), "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "chatlake", "query", "SELECT count(*) FROM mesages"],
                         cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: Catalog Error: Table with name mesages does not exist")
    assert "Traceback" not in out.stderr


def test_a_missing_sql_file_is_bad_usage(local_lake, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["query", "no_such_question.sql"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no such SQL file: no_such_question.sql" in err and "top_chats" in err


def test_a_pack_file_has_several_names():
    text = (PROJECT_DIR / "sql" / "analytics" / "top_chats.sql").read_text()
    for name in ("top_chats", "top_chats.sql", "sql/top_chats.sql", "analytics/top_chats.sql",
                 "sql/analytics/top_chats.sql", str(PROJECT_DIR / "sql" / "analytics" / "top_chats.sql")):
        assert query.resolve_sql(name) == text, name
    assert query.resolve_sql("top_chats LIMIT 1") == "top_chats LIMIT 1"  # not a name: SQL (the engine judges it)


def test_query_reads_a_file_anywhere(local_lake, tmp_path, capsys):
    path = tmp_path / "mine.sql"
    path.write_text("-- my question\nSELECT count(DISTINCT dt) AS days FROM messages;\n")
    assert cli.main(["query", str(path), "--format", "csv"]) == 0
    assert capsys.readouterr().out == "days\n3\n"


def test_integer_division_truncates_as_on_athena(engine):
    got = engine.run("SELECT 7 / 2 AS a, -7 / 2 AS b, 7.0 / 2 AS c, CAST(7 AS double) / 2 AS d, "
                     "count(*) / count(*) AS e FROM messages")
    assert got.rows == [(3, -3, 3.5, 3.5, 1)]


def test_translations_are_cached_and_reused(tmp_path, monkeypatch):
    translate = query.Translator(tmp_path / "cache")
    first = translate("SELECT day_of_week(sent_at) FROM messages")
    assert first == "SELECT ISODOW(sent_at) FROM messages"
    assert len(list((tmp_path / "cache").glob("*.sql"))) == 1

    def no_sqlglot(text):
        raise AssertionError("translated again")

    monkeypatch.setattr(query.translate, "to_duckdb", no_sqlglot)  # where Translator looks it up
    assert translate("SELECT day_of_week(sent_at) FROM messages") == first  # from the cache
    with pytest.raises(AssertionError):
        translate("SELECT 2")  # new SQL is translated
    monkeypatch.undo()
    (tmp_path / "ro").write_text("a file where the cache folder should be")
    assert query.Translator(tmp_path / "ro" / "cache")("SELECT 1") == "SELECT 1"  # an unusable cache is skipped


def test_values_in_json_and_csv():
    assert query.json_value(Decimal("12.50")) == 12.5 and query.json_value(Decimal("3")) == 3
    assert query.json_value(float("nan")) is None and query.json_value(math.inf) is None
    assert query.json_value(datetime(2026, 11, 24, 9, 30)) == "2026-11-24T09:30:00Z"
    assert query.json_value(datetime(2026, 11, 24, 9, 30, 0, 125000)) == "2026-11-24T09:30:00.125000Z"
    assert query.json_value(date(2026, 11, 24)) == "2026-11-24"
    assert query.json_value({"a": [Decimal("1"), b"\x00\x01"]}) == {"a": [1, "AAE="]}
    assert query.json_value(timedelta(minutes=2)) == 120.0
    assert [query.csv_value(v) for v in (None, True, 1.5, [1, 2], datetime(2026, 1, 2))] == [
        "", "true", "1.5", "[1, 2]", "2026-01-02T00:00:00Z"]
    result = query.Result(["a", "a", "b"], [(1, 2, 3)])
    assert result.records() == [{"a": 1, "a_2": 2, "b": 3}]


def test_both_engines_are_the_one_engine_the_cli_and_the_report_take(engine):
    """`query.Engine` is what `query` and `report` run SQL on: DuckDB and Athena both implement it, with `run`
    exactly as the protocol declares it (a drifted signature would only fail on the engine nobody tried)."""
    athena = query.AthenaEngine(client=object(), database="chatlake")
    declared = inspect.signature(query.Engine.run)
    for implementation in (engine, athena):
        assert isinstance(implementation, query.Engine)
        assert inspect.signature(type(implementation).run) == declared
    assert not isinstance(FolderStorage(PROJECT_DIR), query.Engine)


# --- DDL ----------------------------------------------------------------------------------------------------------


def test_ddl_columns_come_from_the_schema(monkeypatch):
    statements = query.athena_ddl("chatlake", "s3://chatlake-test/lake")
    assert [s.name for s in statements] == [
        "database chatlake", "table chatlake.messages", "table chatlake.statuses", "table chatlake.rejects",
        "table chatlake.media", "view chatlake.messages_latest", "view chatlake.message_status_latest",
        "view chatlake.messages_media"]
    for table, statement in zip(query.TABLES, statements[1:5], strict=True):
        tree = sqlglot.parse_one(statement.sql, read="athena")
        assert tree.this.this.sql() == f"chatlake.{table}"
        columns = [(c.name, c.args["kind"]) for c in tree.this.expressions]
        assert [name for name, _ in columns] == list(COLUMNS[table])
        for (name, kind), logical in zip(columns, COLUMNS[table].values(), strict=True):
            assert kind == exp.DataType.build(ATHENA_TYPES[logical], dialect="athena"), name
        partition = tree.find(exp.PartitionedByProperty)
        assert [c.name for c in partition.this.expressions] == ["dt"]
        text = statement.sql
        assert f"LOCATION 's3://chatlake-test/lake/enriched/{table}/'" in text
        assert "STORED AS PARQUET" in text and "CREATE EXTERNAL TABLE IF NOT EXISTS" in text
        for prop in ("'projection.enabled' = 'true'", "'projection.dt.type' = 'date'",
                     "'projection.dt.format' = 'yyyy-MM-dd'", "'projection.dt.range' = '2020-01-01,NOW'",
                     "'projection.dt.interval' = '1'", "'projection.dt.interval.unit' = 'DAYS'",
                     f"'storage.location.template' = 's3://chatlake-test/lake/enriched/{table}/dt=${{dt}}/'"):
            assert prop in text, (table, prop)
    for statement in statements[5:]:
        tree = sqlglot.parse_one(statement.sql, read="athena")
        assert statement.sql.startswith("CREATE OR REPLACE VIEW chatlake.")
        assert {t.sql() for t in tree.find_all(exp.Table)} <= {"chatlake.messages", "chatlake.statuses",
                                                                 "chatlake.media", "chatlake.messages_latest",
                                                                 "chatlake.message_status_latest",
                                                                 "chatlake.messages_media"}
        assert "{{" not in statement.sql


def test_unknown_placeholders_are_refused():
    with pytest.raises(ValueError, match="unknown placeholder"):
        query.render("SELECT {{column_names:nope}} FROM {{database}}.x", {"database": "d"})
    with pytest.raises(ValueError, match="unknown placeholder"):
        query.render("LOCATION '{{place}}'", {"database": "d"})


def test_ddl_prints_every_statement_in_order(monkeypatch, capsys):
    monkeypatch.setenv("DATALAKE_URL", "s3://chatlake-test/lake/")
    monkeypatch.setenv("ATHENA_DATABASE", "chat_dev")
    assert cli.main(["ddl"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.startswith("CREATE")]
    assert heads == ["CREATE DATABASE IF NOT EXISTS chat_dev;",
                     "CREATE EXTERNAL TABLE IF NOT EXISTS chat_dev.messages (",
                     "CREATE EXTERNAL TABLE IF NOT EXISTS chat_dev.statuses (",
                     "CREATE EXTERNAL TABLE IF NOT EXISTS chat_dev.rejects (",
                     "CREATE EXTERNAL TABLE IF NOT EXISTS chat_dev.media (",
                     "CREATE OR REPLACE VIEW chat_dev.messages_latest AS",
                     "CREATE OR REPLACE VIEW chat_dev.message_status_latest AS",
                     "CREATE OR REPLACE VIEW chat_dev.messages_media AS"]
    assert out.count(";\n") == 8 and "s3://chatlake-test/lake/enriched/messages/dt=${dt}/" in out
    assert "FROM chat_dev.messages" in out and "-- messages_latest: the newest version" in out


@pytest.mark.parametrize(("env", "message"), [
    ({"DATALAKE_URL": "/tmp/lake"}, "Athena reads the lake from S3, but DATALAKE_URL is '/tmp/lake'"),
    ({}, "DATALAKE_URL=s3://bucket[/prefix]"),
    ({"DATALAKE_URL": "s3://b", "ATHENA_DATABASE": "chat-lake"}, "ATHENA_DATABASE 'chat-lake' must be letters"),
])
def test_ddl_needs_an_s3_lake_and_a_plain_database_name(monkeypatch, capsys, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["ddl"]) == 1
    assert message in capsys.readouterr().err


# --- DuckDB on S3 (offline: the extensions cannot be downloaded here) --------------------------------------------


class RecordingConnection:
    """Stands in for a duckdb connection where S3 needs extensions: records SQL, optionally refuses them."""

    def __init__(self, extensions: bool) -> None:
        self.extensions = extensions
        self.sql: list[str] = []

    def execute(self, text: str) -> RecordingConnection:
        self.sql.append(text)
        if not self.extensions and text.split()[0] in ("LOAD", "INSTALL"):
            raise duckdb.IOException(f'IO Error: Failed to download extension "{text.split()[1]}"\nmore')
        return self


@pytest.fixture
def s3_lake(s3) -> S3Storage:
    storage = S3Storage("chatlake-test", "lake", client=s3)
    storage.put("enriched/messages/dt=2026-11-24/part-0.parquet", b"PAR1")
    return storage


def test_duckdb_on_s3_uses_httpfs_and_the_aws_credential_chain(s3_lake):
    con = RecordingConnection(extensions=True)
    query.DuckDBEngine(con, s3_lake).prepare("SELECT * FROM messages, statuses")
    assert con.sql[:3] == ["LOAD httpfs", "LOAD aws",
                           "CREATE OR REPLACE SECRET chatlake_s3 (TYPE s3, PROVIDER credential_chain, "
                           "REGION 'us-east-1')"]
    messages, statuses = con.sql[3:]
    assert "read_parquet('s3://chatlake-test/lake/enriched/messages/dt=*/*.parquet', hive_partitioning = true, " \
           "hive_types = {'dt': 'VARCHAR'}" in messages
    assert "read_parquet" not in statuses and "WHERE false" in statuses  # no files there yet: an empty view


def test_duckdb_on_s3_without_the_extension_says_what_to_do(s3_lake):
    con = RecordingConnection(extensions=False)
    with pytest.raises(query.QueryError) as e:
        query.DuckDBEngine(con, s3_lake).run("SELECT count(*) FROM messages")
    assert con.sql == ["LOAD httpfs", "INSTALL httpfs"]
    message = str(e.value)
    assert "needs DuckDB's 'httpfs' extension" in message and "INSTALL httpfs; INSTALL aws" in message
    assert "--engine athena" in message and "\n" not in message


def test_the_cli_does_not_load_the_sql_engines_until_asked():
    code = ("import sys, chatlake.cli; heavy = [m for m in ('duckdb', 'sqlglot', 'boto3', 'pyarrow', 'rich') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
