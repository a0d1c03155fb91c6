"""Exactly once across days, whatever the order of runs, re-runs and failures.

The invariant: for raw deliveries spread over days (retries inside and beyond the retry window, edits on later
days), arriving in between the runs, any sequence of `etl`/`backfill`/catch-up runs and intraday `refresh` runs in
any order, each possibly failing or killed at any write, followed by one `backfill` of the whole range, leaves
exactly the rows of one clean in-order run; and before that final backfill, `status` calls every day behind whose
output differs from the clean run's, and a day shows a message version twice only while a full run's replace step
was cut short (its `part-0.parquet` beside intraday files).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import etl, intraday, layout
from chalicelib.storage import FolderStorage, S3Storage, Storage, StorageError
from chatlake import cli, query, status
from chatlake.local.synthetic import telegram_bytes, whatsapp_bytes
from tests.conftest import keys, record_figure
from tests.unit.test_fuzz import FUZZ_EXAMPLES, fuzz_settings

D1 = date(2026, 11, 20)
T0 = 1_795_000_000  # a Unix time on D1's eve: payload times need not match the day received


def tg_message(chat: int, message_id: int, text: str, edit_date: int | None = None) -> bytes:
    message = {"message_id": message_id, "from": {"id": chat, "is_bot": False, "first_name": "Ana"},
               "chat": {"id": chat, "type": "private", "first_name": "Ana"}, "date": T0 + message_id, "text": text}
    if edit_date is None:
        return telegram_bytes({"update_id": chat * 1000 + message_id, "message": message})
    return telegram_bytes({"update_id": chat * 1000 + message_id + edit_date % 997,
                           "edited_message": {**message, "edit_date": edit_date}})


def wa(value: dict[str, Any]) -> bytes:
    return whatsapp_bytes({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550783881", "phone_number_id": "106540352242922"}, **value}}]}]})


def wa_status(wamid: str, state: str, at: int) -> bytes:
    return wa({"statuses": [{"id": wamid, "status": state, "timestamp": str(at), "recipient_id": "4915112345678"}]})


def wa_version(kind: str, original: str, at: int, event: str) -> bytes:
    """A WhatsApp `edit` or `revoke` of `original`, made at `at`."""
    payload = {"original_message_id": original}
    if kind == "edit":
        payload["message"] = {"type": "text", "text": {"body": f"edited {event}"}}
    return wa({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "4915112345678"}], "messages": [
        {"from": "4915112345678", "id": f"wamid.{event}", "timestamp": str(at), "type": kind, kind: payload}]})


def rows(storage: Storage, table: str, day: date) -> list[tuple]:
    """Every row of every file in the day's folder (duplicates would show), in a stable order."""
    out = []
    for key in keys(storage, layout.enriched_prefix(table, day)):
        data = pq.read_table(io.BytesIO(storage.get(key)))
        out += [tuple(sorted(r.items())) for r in data.to_pylist()]
    return sorted(out, key=repr)


def version(row: tuple) -> tuple:
    r = dict(row)
    return r["source"], r["message_id"], r["edited_at"], r["message_type"]


def snapshot(storage: Storage, days: list[date]) -> dict[tuple[str, date], list[tuple]]:
    return {(t, d): rows(storage, t, d) for t in layout.TABLES for d in days}


# --- the numbered cases of the issue ------------------------------------------------------------------------------


def test_a_retry_on_a_later_day_whose_first_day_never_ran_is_written_once(lake, capsys):
    """Item 1: received on D1, retried on D2; D2's ETL ran, D1's had not; then the backfill `status` asks for."""
    body, status_body = tg_message(101, 1, "hello"), wa_status("wamid.S1", "delivered", T0)
    for day in (D1, D1 + timedelta(days=1)):
        lake.put(layout.raw_key("telegram", day, body), body)
        lake.put(layout.raw_key("whatsapp", day, status_body), status_body)
    d2 = D1 + timedelta(days=1)
    etl.run_day(lake, d2)
    assert etl.behind_reason(lake, D1) and not etl.behind_reason(lake, d2)
    assert cli.main(["backfill", "--start", str(D1), "--end", str(D1)]) == 0
    assert [len(rows(lake, "messages", d)) for d in (D1, d2)] == [1, 0]
    assert [len(rows(lake, "statuses", d)) for d in (D1, d2)] == [1, 0]
    assert not etl.behind_reason(lake, D1) and not etl.behind_reason(lake, d2)


def test_the_catch_up_runs_what_is_behind_in_the_window_oldest_first(lake):
    """Item 1, the schedule's side: yesterday failed; tonight's run repairs it and its dependants."""
    today = D1 + timedelta(days=3)
    body = tg_message(102, 1, "hi")
    for day in (D1, D1 + timedelta(days=2)):
        lake.put(layout.raw_key("telegram", day, body), body)
    done = etl.catch_up(lake, today)
    assert [r.day for r in done] == [D1, D1 + timedelta(days=2)]
    assert [r.messages for r in done] == [1, 0]
    assert etl.catch_up(lake, today) == []  # nothing behind any more


def test_pii_hash_mode_keeps_the_cross_day_check(lake):
    """Item 2: a Telegram private-chat message retried the next day, with PII_MODE=hash."""
    body = tg_message(103, 7, "secret")
    for day in (D1, D1 + timedelta(days=1)):
        lake.put(layout.raw_key("telegram", day, body), body)
    results = etl.run_days(lake, [D1, D1 + timedelta(days=1)], pii_salt="pepper")
    assert [r.messages for r in results] == [1, 0] and results[1].duplicates == 1
    [row] = rows(lake, "messages", D1)
    assert "103" not in dict(row)["message_id"]  # hashed
    assert b"103" not in lake.get(layout.versions_key(D1))  # the version files hold hashed identifiers too


def test_a_day_that_fails_part_way_keeps_its_previous_output(lake, monkeypatch):
    """Item 3: writing `statuses` fails after `messages` was replaced: every table is as before."""
    first = [tg_message(104, 1, "one"), wa_status("wamid.S2", "sent", T0)]
    for body in first:
        lake.put(layout.raw_key("telegram" if b"update_id" in body else "whatsapp", D1, body), body)
    etl.run_day(lake, D1)
    before = {k: lake.get(k) for k in keys(lake, "enriched/")}
    before_commit = lake.get(layout.commit_key(D1))
    for body in (tg_message(104, 2, "two"), wa_status("wamid.S3", "read", T0)):
        lake.put(layout.raw_key("telegram" if b"update_id" in body else "whatsapp", D1, body), body)
    real_put = type(lake).put

    def disk_full(self, key, data, **kw):
        if key.startswith("enriched/statuses/"):
            raise StorageError("No space left on device")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(type(lake), "put", disk_full)
    with pytest.raises(StorageError):
        etl.run_day(lake, D1)
    monkeypatch.undo()
    assert {k: lake.get(k) for k in keys(lake, "enriched/")} == before
    assert lake.get(layout.commit_key(D1)) == before_commit
    assert "arrived after its last run" in etl.behind_reason(lake, D1)
    etl.run_day(lake, D1)
    assert len(rows(lake, "messages", D1)) == 2 and len(rows(lake, "statuses", D1)) == 2


def test_a_killed_commit_leaves_the_day_behind(lake, monkeypatch):
    """Killed (no handler runs) after `messages` was replaced: no commit record, so `status` says behind."""
    lake.put(layout.raw_key("telegram", D1, tg_message(105, 1, "a")), tg_message(105, 1, "a"))
    etl.run_day(lake, D1)
    lake.put(layout.raw_key("telegram", D1, tg_message(105, 2, "b")), tg_message(105, 2, "b"))
    real_put = type(lake).put

    def killed(self, key, data, **kw):
        if key.startswith("enriched/statuses/"):
            raise KeyboardInterrupt  # stands for SIGKILL here: not an Exception, so nothing rolls back
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(type(lake), "put", killed)
    with pytest.raises(KeyboardInterrupt):
        etl.run_day(lake, D1)
    monkeypatch.undo()
    assert "no completed ETL run" in etl.behind_reason(lake, D1)
    assert etl.catch_up(lake, D1 + timedelta(days=1))[0].messages == 2


def test_same_second_edit_and_revoke_are_both_kept(lake, tmp_path):
    """Item 4: both versions, whatever the raw keys' order; `messages_latest` shows the revoke."""
    original = wa({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "4915112345678"}], "messages": [
        {"from": "4915112345678", "id": "wamid.ORIG", "timestamp": str(T0), "type": "text",
         "text": {"body": "typo"}}]})
    bodies = [original, wa_version("edit", "wamid.ORIG", T0 + 60, "E1"), wa_version("revoke", "wamid.ORIG", T0 + 60,
                                                                                    "R1")]
    for body in bodies:
        lake.put(layout.raw_key("whatsapp", D1, body), body)
    result = etl.run_day(lake, D1)
    assert result.messages == 3 and result.duplicates == 0
    types = sorted(dict(r)["message_type"] for r in rows(lake, "messages", D1))
    assert types == ["revoke", "text", "text"]
    if isinstance(lake, FolderStorage):
        engine = query.DuckDBEngine(query.connect_duckdb(), lake)
        latest = engine.run("SELECT message_type, text FROM messages_latest WHERE message_id = 'wamid.ORIG'").rows
        assert latest == [("revoke", None)]


# --- the invariant, as a property -----------------------------------------------------------------------------------

DAYS = 5
WINDOW = 2  # small, so that retries beyond the window happen too


class Killed(BaseException):
    """A SIGKILL stand-in: no `except Exception` sees it, so no rollback runs."""


class FaultyStorage:
    """Delegates to a real backend; the `at`-th write (put or delete) fails (StorageError) or kills (Killed)."""

    def __init__(self, inner: Storage, at: int | None, kill: bool) -> None:
        self.inner, self.at, self.kill, self.writes = inner, at, kill, 0
        self.url, self.parallel_reads = inner.url, inner.parallel_reads

    def _write(self) -> None:
        self.writes += 1
        if self.writes == self.at:
            raise Killed() if self.kill else StorageError("injected write failure")

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        self._write()
        return self.inner.put(key, data, overwrite=overwrite)

    def delete(self, key: str) -> None:
        self._write()
        self.inner.delete(key)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def list(self, prefix: str) -> Iterator[Any]:
        return self.inner.list(prefix)

    def keys(self, prefix: str) -> Iterator[str]:
        return self.inner.keys(prefix)

    answered = 0  # arrivals journal reads that answered: intraday runs that read no listing (folder)

    def __getattr__(self, name: str) -> Any:  # a folder's reads beyond the protocol (mtimes, arrivals journals)
        found = getattr(self.inner, name)
        if name != "arrivals":
            return found

        def arrivals(prefix: str, mark: tuple[int, int]) -> Any:
            got = found(prefix, mark)
            FaultyStorage.answered += got is not None
            return got
        return arrivals


@st.composite
def traffic(draw: st.DrawFn) -> list[tuple[int, str, bytes]]:
    """(day index, source, body): messages with retries (inside and beyond the window), edits on later days,
    statuses retried, and same-second WhatsApp edit/revoke pairs."""
    out: list[tuple[int, str, bytes]] = []
    for n in range(draw(st.integers(1, 5))):
        first = draw(st.integers(0, DAYS - 1))
        later = st.lists(st.integers(first, DAYS - 1), max_size=3)
        kind = draw(st.sampled_from(["telegram", "status", "whatsapp_versions"]))
        if kind == "telegram":
            body = tg_message(200 + n % 2, n, f"m{n}")
            out += [(d, "telegram", body) for d in [first, *draw(later)]]
            for d in draw(later):  # an edit, received on a later day
                out.append((d, "telegram", tg_message(200 + n % 2, n, f"m{n} edited", edit_date=T0 + 5000 + d)))
        elif kind == "status":
            body = wa_status(f"wamid.S{n}", draw(st.sampled_from(["sent", "delivered", "read"])), T0 + n)
            out += [(d, "whatsapp", body) for d in [first, *draw(later)]]
        else:
            for d in [first, *draw(later)]:
                out.append((d, "whatsapp", wa_version("edit", f"wamid.O{n}", T0 + 60, f"E{n}")))
                if draw(st.booleans()):
                    out.append((d, "whatsapp", wa_version("revoke", f"wamid.O{n}", T0 + 60, f"R{n}")))
    return out


run = st.tuples(
    st.sampled_from(["etl", "backfill", "catch_up", "arrive", "refresh", "refresh", "trickle"]),
    st.integers(0, DAYS - 1), st.integers(0, DAYS - 1),
    st.one_of(st.none(), st.tuples(st.integers(1, 12), st.booleans())),  # (failing write, killed?)
)


SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextmanager
def backend(kind: str, s3_client: Any) -> Iterator[Storage]:
    if kind == "folder":
        # A RAM-backed folder where there is one: this machine's disk makes each mkdir/rmdir cost milliseconds.
        with tempfile.TemporaryDirectory(prefix="chatlake-once-", dir=SCRATCH) as root:
            yield FolderStorage(root)
    else:
        yield S3Storage("chatlake-test", f"once-{uuid.uuid4().hex}", client=s3_client)


def store_all(storage: Storage, items: list[tuple[int, str, bytes]]) -> None:
    for d, source, body in items:
        storage.put(layout.raw_key(source, D1 + timedelta(days=d), body), body)


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_any_order_of_runs_and_failures_converges_to_one_clean_run(kind, request):
    s3_client = request.getfixturevalue("s3") if kind == "s3" else None
    days = [D1 + timedelta(days=i) for i in range(DAYS)]
    cases = {"n": 0, "failed": 0, "killed": 0, "behind_flagged": 0, "refreshes": 0}
    FaultyStorage.answered = 0

    @fuzz_settings(200 if kind == "folder" else 15)
    @given(traffic(), st.lists(run, max_size=10), st.booleans())
    def check(items: list[tuple[int, str, bytes]], runs: list[tuple], hashed: bool) -> None:
        salt = "pepper" if hashed else None
        cases["n"] += 1
        with backend(kind, s3_client) as clean:
            store_all(clean, items)
            etl.run_days(clean, days, salt, window=WINDOW)
            want = snapshot(clean, days)
        with backend(kind, s3_client) as lake:
            arrived = 0  # raw data arrives day by day, in between the runs
            for verb, a, b, fault in runs:
                storage = FaultyStorage(lake, *(fault or (None, False)))
                start, end = sorted((a, b))
                try:
                    if verb == "arrive":
                        arrived = max(arrived, end + 1)
                        store_all(lake, [i for i in items if i[0] < arrived])
                    elif verb == "trickle":  # part of the traffic, of any days: deliveries arrive during a day
                        store_all(lake, items[:len(items) * (b + 1) // DAYS])
                    elif verb == "refresh":
                        cases["refreshes"] += 1
                        intraday.run_refresh(storage, days[a], salt, window=WINDOW)
                    elif verb == "etl":
                        etl.run_day(storage, days[a], salt, window=WINDOW)
                    elif verb == "backfill":
                        etl.run_days(storage, days[start:end + 1], salt, window=WINDOW)
                    else:
                        etl.catch_up(storage, days[a], salt, window=WINDOW)
                except StorageError:
                    cases["failed"] += 1
                except Killed:
                    cases["killed"] += 1
            store_all(lake, items)
            got = snapshot(lake, days)
            for d in days:  # intraday runs never add a version twice; only a cut-short replace step shows one twice
                versions = [version(r) for r in got[("messages", d)]]
                if len(versions) != len(set(versions)):
                    names = {k.rpartition("/")[2] for k in keys(lake, layout.enriched_prefix("messages", d))}
                    assert layout.PART_NAME in names and any(layout.is_intraday_file(n) for n in names), (d, names)
            for d in days:  # status must flag every day whose output is not the clean run's
                if any(got[(t, d)] != want[(t, d)] for t in layout.TABLES):
                    assert etl.behind_reason(lake, d, salt, window=WINDOW), (d, "differs but is not behind")
                    cases["behind_flagged"] += 1
            behind = [d for d in days if etl.behind_reason(lake, d, salt, window=WINDOW)]
            etl.run_days(lake, behind, salt, window=WINDOW)  # the catch-up's repair alone is enough ...
            assert snapshot(lake, days) == want
            etl.run_days(lake, days, salt, window=WINDOW)  # ... and so is the final backfill
            assert snapshot(lake, days) == want
            assert not [d for d in days if etl.behind_reason(lake, d, salt, window=WINDOW)]

    check()
    mode = "make fuzz, random" if FUZZ_EXAMPLES else "derandomized"
    record_figure(f"exactly once ({kind})", f"{cases['n']} cases ({mode}): any order of etl/backfill/catch-up runs and "
                                            f"{cases['refreshes']} intraday refreshes ("
                                            f"{FaultyStorage.answered} journal reads in place of a listing), "
                                            f"{cases['failed']} failed and {cases['killed']} killed mid-write, "
                                            f"{cases['behind_flagged']} stale days all flagged by status; the final "
                                            "backfill equals one clean in-order run")


def test_status_json_of_the_commit_names_its_inputs(lake):
    lake.put(layout.raw_key("telegram", D1, tg_message(106, 1, "x")), tg_message(106, 1, "x"))
    etl.run_day(lake, D1, window=3)
    record = json.loads(lake.get(layout.commit_key(D1)))
    assert record["window"] == 3 and sorted(record["depends"]) == [str(D1 - timedelta(days=i)) for i in (3, 2, 1)]
    assert record["rows"] == {"messages": 1, "statuses": 0, "rejects": 0}
    assert status.day_status(lake, D1, window=3).behind is False
    assert "RETRY_WINDOW_DAYS" in etl.behind_reason(lake, D1, window=7)


def test_the_etl_keeps_files_of_imports_and_judges_only_its_own(lake):
    """`chatlake import` writes `import-<digest>.parquet` beside the ETL's file: a run neither removes it nor is
    called behind because of it."""
    lake.put(layout.raw_key("telegram", D1, tg_message(107, 1, "x")), tg_message(107, 1, "x"))
    etl.run_day(lake, D1)
    imported = layout.import_part_key("messages", D1, "ab" * 32)
    lake.put(imported, lake.get(layout.part_key("messages", D1)))
    assert etl.behind_reason(lake, D1) is None
    etl.run_day(lake, D1)
    assert imported in keys(lake, layout.enriched_prefix("messages", D1))
