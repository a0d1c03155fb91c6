"""The daily ETL on both backends: rows checked against the generator's own expectations, Parquet read
back with pyarrow and DuckDB, exactly once across retries and days, nothing lost on faults."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chalice.test import Client

from chalicelib import etl, layout
from chalicelib.schema import COLUMNS
from chalicelib.storage import FolderStorage, StorageError
from chatlake import status
from chatlake.local import synthetic
from tests.conftest import keys

DAY = date(2026, 11, 24)


def table(storage, name: str, day: date = DAY) -> pa.Table:
    files = [k for k in keys(storage, layout.enriched_prefix(name, day))]
    assert files == [layout.enriched_prefix(name, day) + etl.PART_NAME]
    return pq.read_table(io.BytesIO(storage.get(files[0])))


def message_keys(t: pa.Table) -> set[tuple]:
    edited = t.column("edited_at").cast("int64").to_pylist()
    return set(zip(t.column("source").to_pylist(), t.column("message_id").to_pylist(), edited, strict=True))


def status_keys(t: pa.Table) -> set[tuple]:
    return set(zip(t.column("message_id").to_pylist(), t.column("status").to_pylist(), strict=True))


@pytest.fixture(scope="module")
def day_of_traffic() -> list[synthetic.Delivery]:
    return synthetic.deliveries(1500, seed=11, day=DAY)


def test_a_day_of_every_kind_gives_exactly_the_expected_rows(lake, day_of_traffic):
    synthetic.store(lake, day_of_traffic)
    result = etl.run_day(lake, DAY)
    want_messages, want_statuses = synthetic.expected_rows(day_of_traffic)
    messages, statuses, rejects = table(lake, "messages"), table(lake, "statuses"), table(lake, "rejects")
    assert message_keys(messages) == want_messages
    assert messages.num_rows == len(want_messages)  # unique on (source, message_id, edited_at)
    assert status_keys(statuses) == want_statuses and statuses.num_rows == len(want_statuses)
    assert rejects.num_rows == 0
    assert (result.messages, result.statuses, result.rejects) == (len(want_messages), len(want_statuses), 0)
    assert result.deliveries == len({d.body for d in day_of_traffic})
    kinds = {d.kind for d in day_of_traffic}
    assert {"edit", "revoke", "batch", "bsuid", "echo", "channel_post", "callback_query", "status_failed"} <= kinds


def test_parquet_schema_types_compression_and_order(tmp_path, day_of_traffic):
    storage = FolderStorage(tmp_path)
    synthetic.store(storage, day_of_traffic)
    etl.run_day(storage, DAY)
    for name in layout.TABLES:
        path = tmp_path / layout.enriched_prefix(name, DAY) / etl.PART_NAME
        meta = pq.ParquetFile(path).metadata
        assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
        assert pq.ParquetFile(path).schema_arrow.names == list(COLUMNS[name])  # `dt` is the folder, not a column
    messages = pq.ParquetFile(tmp_path / layout.enriched_prefix("messages", DAY) / etl.PART_NAME).read()
    assert messages.schema.field("sent_at").type == pa.timestamp("ms", tz="UTC")
    assert messages.schema.field("edited_at").type == pa.timestamp("ms", tz="UTC")
    assert messages.schema.field("is_edit").type == pa.bool_()
    sent = messages.column("sent_at").to_pylist()
    assert sent == sorted(sent)
    # DuckDB reads the same lake with hive partitioning: `dt` comes from the folder name
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT dt::VARCHAR, count(*), count(DISTINCT (source, message_id, edited_at)), min(typeof(sent_at))
        FROM read_parquet('{tmp_path}/enriched/messages/*/*.parquet', hive_partitioning = true)
        GROUP BY dt""").fetchall()
    assert rows == [(str(DAY), messages.num_rows, messages.num_rows, "TIMESTAMP WITH TIME ZONE")]


def test_rerunning_a_day_gives_identical_files(lake, day_of_traffic):
    synthetic.store(lake, day_of_traffic)
    etl.run_day(lake, DAY)
    first = {k: lake.get(k) for k in keys(lake, "enriched/")}
    etl.run_day(lake, DAY)
    assert {k: lake.get(k) for k in keys(lake, "enriched/")} == first
    assert all(k.startswith(("raw/", "etl/")) for k in keys(lake) if not k.startswith("enriched/"))


def test_a_retry_received_on_a_later_day_gives_no_second_row(lake):
    batch = synthetic.deliveries(300, seed=5, day=DAY, retry_rate=0)
    synthetic.store(lake, batch)
    retried = [d for d in batch if d.messages or d.statuses][:40]
    next_day = DAY + timedelta(days=3)
    for d in retried:  # the same bytes, received three days later (WhatsApp retries for up to 7 days)
        lake.put(layout.raw_key(d.source, next_day, d.body), d.body)
    etl.run_days(lake, [DAY, next_day])
    later = etl.run_day(lake, next_day)
    assert later.deliveries == len(retried) and later.messages == 0 and later.statuses == 0
    assert later.duplicates == sum(len(d.messages) + len(d.statuses) for d in retried)
    assert table(lake, "messages", next_day).num_rows == 0


def test_an_edit_on_a_later_day_is_a_new_row(lake):
    original = synthetic.samples(1_795_000_000)["telegram"]
    update = json.loads(original)
    update["update_id"] += 1
    update["edited_message"] = {**update.pop("message"), "edit_date": 1_795_090_000, "text": "fixed typo"}
    lake.put(layout.raw_key("telegram", DAY, original), original)
    edit = synthetic.telegram_bytes(update)
    lake.put(layout.raw_key("telegram", DAY + timedelta(days=1), edit), edit)
    etl.run_days(lake, [DAY, DAY + timedelta(days=1)])
    first, second = table(lake, "messages"), table(lake, "messages", DAY + timedelta(days=1))
    assert first.column("is_edit").to_pylist() == [False] and second.column("is_edit").to_pylist() == [True]
    assert first.column("message_id").to_pylist() == second.column("message_id").to_pylist()
    assert second.column("text").to_pylist() == ["fixed typo"]


def test_unknown_shapes_and_parser_crashes_become_rejects(lake, monkeypatch):
    bodies = {
        "telegram": [b'{"hello":"world"}', b'{"update_id":5,"message":{"message_id":1,"text":"no chat, no date"}}'],
        "whatsapp": [b'{"object":"page","entry":[]}', b'{"object":"whatsapp_business_account"}'],
    }
    for source, items in bodies.items():
        for body in items:
            lake.put(layout.raw_key(source, DAY, body), body)
    good = synthetic.samples(1_795_000_000)
    for source, body in good.items():
        lake.put(layout.raw_key(source, DAY, body), body)
    result = etl.run_day(lake, DAY)
    assert (result.messages, result.rejects) == (2, 4)
    rejects = table(lake, "rejects").to_pylist()
    assert {r["raw_key"] for r in rejects} == {layout.raw_key(s, DAY, b) for s, items in bodies.items() for b in items}
    assert all(len(r["reason"]) > 20 for r in rejects)

    def broken(update, raw_key):
        raise KeyError("boom")

    monkeypatch.setitem(etl.PARSERS, "telegram", broken)
    result = etl.run_day(lake, DAY)
    assert result.rejects == 5 and result.messages == 1  # the day still completes
    reasons = [r["reason"] for r in table(lake, "rejects").to_pylist() if "parser failed" in r["reason"]]
    assert len(reasons) == 3 and "KeyError" in reasons[0] and "re-run the day" in reasons[0]


def test_a_crash_before_cleanup_is_mended_by_a_rerun(lake, monkeypatch, day_of_traffic):
    synthetic.store(lake, day_of_traffic[:200])
    stale = layout.enriched_prefix("messages", DAY) + "part-from-an-older-version.parquet"
    lake.put(stale, b"old")

    real_delete = type(lake).delete

    def crash(self, key):
        if key == stale:
            raise StorageError("killed between writing and cleaning up")
        real_delete(self, key)

    monkeypatch.setattr(type(lake), "delete", crash)
    result = etl.run_day(lake, DAY)
    assert layout.enriched_prefix("messages", DAY) + etl.PART_NAME in keys(lake)  # the new file was written first
    assert len(result.warnings) == 1 and stale in result.warnings[0]
    assert "messages files are not those of its last run" in etl.behind_reason(lake, DAY)  # status says so
    monkeypatch.undo()
    etl.run_day(lake, DAY)
    prefix = layout.enriched_prefix("messages", DAY)
    assert keys(lake, prefix) == [prefix + etl.PART_NAME]
    assert etl.behind_reason(lake, DAY) is None


def test_a_crash_while_writing_keeps_the_previous_day(lake, monkeypatch, day_of_traffic):
    synthetic.store(lake, day_of_traffic[:200])
    etl.run_day(lake, DAY)
    before = {k: lake.get(k) for k in keys(lake, "enriched/")}
    synthetic.store(lake, day_of_traffic[200:400])
    real_put = type(lake).put

    def failing_put(self, key, data, **kw):
        if key.startswith("enriched/statuses/"):
            raise StorageError("disk full")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(type(lake), "put", failing_put)
    with pytest.raises(StorageError):
        etl.run_day(lake, DAY)
    assert lake.get(layout.enriched_prefix("statuses", DAY) + etl.PART_NAME) == before[
        layout.enriched_prefix("statuses", DAY) + etl.PART_NAME]  # never empty, never doubled


def test_a_corrupt_earlier_versions_file_is_rebuilt_from_raw(lake, day_of_traffic):
    earlier = DAY - timedelta(days=2)
    batch = [d for d in day_of_traffic[:100] if d.messages]
    for d in batch:  # the same bodies, received two days before too
        lake.put(layout.raw_key(d.source, earlier, d.body), d.body)
        lake.put(layout.raw_key(d.source, DAY, d.body), d.body)
    etl.run_day(lake, earlier)
    lake.put(layout.versions_key(earlier), b"PAR1 not parquet")  # and the earlier day's tables are gone
    for t in layout.TABLES:
        lake.delete(layout.part_key(t, earlier))
    result = etl.run_day(lake, DAY)
    assert result.messages == 0 and result.statuses == 0 and result.duplicates >= len({d.body for d in batch})
    assert etl.read_versions(lake, etl.list_raw(lake, earlier), etl.pii_mark(None)) is not None  # rebuilt


def test_pii_hash_mode(lake, day_of_traffic):
    synthetic.store(lake, day_of_traffic)
    etl.run_day(lake, DAY)
    plain = table(lake, "messages").to_pylist()
    etl.run_day(lake, DAY, pii_salt="pepper")
    hashed = table(lake, "messages").to_pylist()
    etl.run_day(lake, DAY, pii_salt="pepper")
    assert table(lake, "messages").to_pylist() == hashed  # stable for one salt
    by_id = {(r["source"], r["raw_key"], r["sent_at"], r["edited_at"], r["message_type"]): r for r in hashed}
    assert all(r["sender_name"] is None for r in hashed)
    for p in plain:
        h = by_id[(p["source"], p["raw_key"], p["sent_at"], p["edited_at"], p["message_type"])]
        for col in ("sender_id", "sender_phone", "sender_username"):
            assert (h[col] is None) == (p[col] is None)
            assert h[col] is None or (len(h[col]) == 64 and h[col] != p[col])
        if p["chat_type"] == "private":
            assert len(h["chat_id"]) == 64 and p["chat_id"] not in json.dumps(h, default=str)
        else:
            assert h["chat_id"] == p["chat_id"] and h["chat_title"] == p["chat_title"]
    for column in ("sender_phone", "sender_id", "chat_id"):  # joins still work: one value, one hash
        pairs = {(p[column], by_id[(p["source"], p["raw_key"], p["sent_at"], p["edited_at"],
                                    p["message_type"])][column]) for p in plain}
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs})
    statuses = table(lake, "statuses").to_pylist()
    assert statuses and all(len(s["recipient_id"]) == 64 for s in statuses)


def test_scheduled_function_runs_yesterdays_etl(tmp_path, monkeypatch):
    from app import app

    monkeypatch.setenv("DATALAKE_URL", str(tmp_path))
    yesterday = etl.yesterday()
    storage = FolderStorage(tmp_path)
    batch = synthetic.deliveries(50, seed=2, day=yesterday)
    synthetic.store(storage, batch)
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:us-east-1:123456789012:rule/daily"])
        reply = client.lambda_.invoke("daily_etl", event)
    [day] = reply.payload["days"]  # the catch-up: only yesterday is behind
    assert day["day"] == str(yesterday)
    assert day["messages"] == len(synthetic.expected_rows(batch)[0])
    assert status.is_behind(storage, yesterday) is False
    assert message_keys(table(storage, "messages", yesterday)) == synthetic.expected_rows(batch)[0]


CORPUS_REJECTED = {"telegram/no_update_id", "telegram/message_without_chat", "telegram/message_without_date",
                   "telegram/unknown_update_kind", "whatsapp/wrong_object", "whatsapp/missing_entry",
                   "whatsapp/message_without_id", "whatsapp/message_without_timestamp",
                   "whatsapp_eum/entry_not_string", "whatsapp_eum/entry_not_json", "whatsapp_eum/entry_not_object",
                   "whatsapp_eum/entry_missing"}
CORPUS_NO_ROWS = {"telegram/business_connection", "telegram/callback_query", "telegram/chat_join_request",
                  "telegram/chat_member", "telegram/chosen_inline_result", "telegram/deleted_business_messages",
                  "telegram/inline_query", "telegram/message_reaction", "telegram/message_reaction_count",
                  "telegram/my_chat_member", "telegram/poll_answer", "telegram/poll_update",
                  "whatsapp/account_update", "whatsapp/template_status_update", "whatsapp/user_preferences",
                  "whatsapp/value_errors", "whatsapp/status_batch", "whatsapp/status_delivered",
                  "whatsapp/status_failed", "whatsapp/status_read", "whatsapp/status_sent",
                  "whatsapp_eum/status_sent", "whatsapp_eum/status_delivered", "whatsapp_eum/status_read",
                  "whatsapp_eum/status_failed"}


def test_the_documented_payload_corpus_end_to_end(lake):
    """Every payload written from the platforms' docs, through the real ETL: rows, statuses and rejects
    land where the contract says, and the day's Parquet holds them all."""
    from tests.conftest import PAYLOADS

    names = {}
    for path in sorted(PAYLOADS.glob("*/*.json")):
        body = path.read_bytes()
        key = layout.raw_key(path.parent.name, DAY, body)
        lake.put(key, body)
        names[key] = f"{path.parent.name}/{path.stem}"
    assert set(names.values()) >= CORPUS_REJECTED | CORPUS_NO_ROWS
    result = etl.run_day(lake, DAY)
    assert result.deliveries == len(names)
    rejected = {names[r["raw_key"]] for r in table(lake, "rejects").to_pylist()}
    assert rejected == CORPUS_REJECTED and result.rejects == len(CORPUS_REJECTED)
    with_rows = {names[k] for k in table(lake, "messages").column("raw_key").to_pylist()}
    partly_good = {"whatsapp/message_without_id", "whatsapp/message_without_timestamp"}  # other messages still count
    # the End User Messaging Social copies of webhook messages: one row each, from the webhook's raw key (key order)
    both_doors = {f"whatsapp_eum/{n}" for n in ("text", "image", "echoes", "no_message_id", "status_sent",
                                                  "status_delivered", "status_read", "status_failed")}
    assert with_rows == set(names.values()) - CORPUS_NO_ROWS - (CORPUS_REJECTED - partly_good) - both_doors
    with_statuses = {names[k] for k in table(lake, "statuses").column("raw_key").to_pylist()}
    assert with_statuses == {n for n in names.values() if "/status_" in n} - both_doors | {"whatsapp/batch"}
