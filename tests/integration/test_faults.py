"""Faults: a write failing halfway, S3 throttling (the webhook and the ETL), the ETL process killed between
writing a day and cleaning up, and corrupt Parquet files of earlier days. Nothing may be lost or doubled.

What tests/integration/test_routes.py and tests/integration/test_etl.py already cover is not repeated here: a missing
bucket (503, the retry stores once), a delete raising in-process, a put raising while writing, one corrupt earlier file.
"""

from __future__ import annotations

import errno
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.awsrequest import AWSResponse
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib import etl, layout, runtime
from chalicelib.storage import FolderStorage, S3Storage, Storage, StorageError, make_s3_client
from chatlake.local import synthetic
from tests.conftest import PROJECT_DIR, SECRETS, keys, record_figure

DAY = date(2026, 11, 24)
SAMPLES = synthetic.samples(1_795_000_000)
BUCKET = "chatlake-faults"


def post(client: Client, source: str, body: bytes) -> Any:
    delivery = synthetic.Delivery(source, body)
    return client.http.post(f"/{source}", headers=delivery.headers(SECRETS), body=body)


def message_keys(storage: Storage, day: date) -> list[tuple]:
    t = pq.read_table(io.BytesIO(storage.get(layout.enriched_prefix("messages", day) + etl.PART_NAME)))
    return list(zip(t.column("source").to_pylist(), t.column("message_id").to_pylist(),
                    t.column("edited_at").cast("int64").to_pylist(), strict=True))


def status_keys(storage: Storage, day: date) -> list[tuple]:
    t = pq.read_table(io.BytesIO(storage.get(layout.enriched_prefix("statuses", day) + etl.PART_NAME)))
    return list(zip(t.column("message_id").to_pylist(), t.column("status").to_pylist(), strict=True))


# --- a write failing halfway (folder lake) ----------------------------------------------------------------------------

def _half_write(real_write: Any) -> Any:
    """An `os.write` that takes half of what it is given, then fails as a full disk does."""

    def write(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_a_write_failing_halfway_leaves_nothing_partial_and_the_retry_stores_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str], source: str) -> None:
    """A full disk mid-write: 503 (the platform retries), no partial or temp file; the retry stores it once."""
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    client = Client(app, stage_name="local")
    with monkeypatch.context() as m:
        m.setattr("chalicelib.storage.os.write", _half_write(os.write))
        r = post(client, source, SAMPLES[source])
        assert r.status_code == 503 and "retry" in r.json_body["error"]
        assert [p.name for p in (tmp_path / "lake").rglob("*") if p.is_file()] == []  # no partial, no temp file
    for _ in range(2):  # the platform's retry, then a second copy of it
        r = post(client, source, SAMPLES[source])
        assert r.status_code == 200
    assert keys(runtime.storage()) == [r.json_body["key"]]
    assert runtime.storage().get(r.json_body["key"]) == SAMPLES[source]


def test_a_failure_between_the_quarantine_body_and_its_note_is_mended_by_the_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    """Quarantine is two writes: if the note fails the answer is 503, and the retry completes the pair."""
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    storage = runtime.storage()
    client = Client(app, stage_name="local")
    real_put = FolderStorage.put

    def note_fails(self: FolderStorage, key: str, data: bytes, **kw: Any) -> bool:
        if key.startswith("quarantine/") and key.endswith(".json"):
            raise StorageError("disk full")
        return real_put(self, key, data, **kw)

    body = b"update_id=1&not=json"
    with monkeypatch.context() as m:
        m.setattr(FolderStorage, "put", note_fails)
        assert post(client, "telegram", body).status_code == 503
    r = post(client, "telegram", body)
    assert r.status_code == 400
    body_key, note_key = layout.quarantine_keys("telegram", datetime.now(UTC).date(), body)
    assert keys(storage) == sorted([body_key, note_key]) and storage.get(body_key) == body


# --- S3 throttling ----------------------------------------------------------------------------------------------------

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>THROTTLED</RequestId></Error>")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


class Throttle:
    """S3 answering 503 SlowDown instead of moto: the first `times(url)` attempts of each distinct request
    (method + URL), or all of them when that is None; only for the operations in `ops` (all if empty).
    Deciding by request, not by arrival order, keeps it deterministic with the ETL's 32 reading threads."""

    def __init__(self) -> None:
        self.times: Callable[[str], int | None] = lambda url: 0
        self.ops: set[str] = set()
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.throttled = 0

    def __call__(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        op = event_name.rsplit(".", 1)[-1]
        if self.ops and op not in self.ops:
            return None
        ident = (request.method, request.url)
        self.attempts[ident] += 1
        times = self.times(request.url)
        if times is not None and self.attempts[ident] > times:
            return None
        self.throttled += 1
        response = AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Raw(SLOW_DOWN))
        # botocore calls every before-send handler and uses the first answer: moto, called next, must not act
        # on this attempt (it would store the object), so the request goes to an address moto does not serve.
        request.url = "https://throttled.invalid/"
        return response


@pytest.fixture
def throttled_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Throttle, list[float]]]:
    """The production S3 client (`make_s3_client`: adaptive retries) on moto, behind a `Throttle`, and a plain client.

    botocore decides what to retry and when to give up; only its waits are made instant (the backoff it asks
    for is recorded instead of slept, and the adaptive rate limiter's token bucket never blocks), so that a test
    of 9 attempts per request does not take minutes."""
    from botocore.retries import bucket, standard

    waits: list[float] = []
    real_delay = standard.ExponentialBackoff.delay_amount

    def recorded_delay(self: Any, context: Any) -> float:
        waits.append(real_delay(self, context))
        return 0.0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", recorded_delay)
    monkeypatch.setattr(bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    with mock_aws():
        plain = boto3.client("s3", region_name="us-east-1")
        plain.create_bucket(Bucket=BUCKET)
        client = make_s3_client()
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}
        throttle = Throttle()
        client.meta.events.register_first("before-send.s3", throttle)
        yield client, plain, throttle, waits


def test_webhook_on_throttled_s3_retries_inside_the_request_or_answers_503(
        throttled_s3: tuple[Any, Any, Throttle, list[float]], monkeypatch: pytest.MonkeyPatch,
        secrets_env: dict[str, str]) -> None:
    """Brief throttling is absorbed by botocore's retries (200, stored once); throttling past the last attempt
    is a 503, never a 500, so the platform retries later; an earlier attempt that landed is not written twice."""
    client, plain, throttle, waits = throttled_s3
    monkeypatch.setenv("DATALAKE_URL", f"s3://{BUCKET}/lake")
    runtime.use_storage(f"s3://{BUCKET}/lake", S3Storage(BUCKET, "lake", client=client))
    storage = S3Storage(BUCKET, "lake", client=plain)  # what is in the bucket, seen past the throttle
    http = Client(app, stage_name="local")

    throttle.times = lambda url: 2
    r = post(http, "telegram", SAMPLES["telegram"])
    assert r.status_code == 200 and list(throttle.attempts.values()) == [3]
    assert storage.get(r.json_body["key"]) == SAMPLES["telegram"]

    throttle.times, throttle.attempts = lambda url: None, Counter()
    r = post(http, "whatsapp", SAMPLES["whatsapp"])
    assert r.status_code == 503 and "retry" in r.json_body["error"]
    assert list(throttle.attempts.values()) == [9]  # bounded: the first attempt and 8 retries, then the answer
    assert keys(storage, "raw/source=whatsapp/") == []

    # the platform's retry: meanwhile an earlier attempt's object did land (its answer was the one lost)
    key = layout.raw_key("whatsapp", datetime.now(UTC).date(), SAMPLES["whatsapp"])
    plain.put_object(Bucket=BUCKET, Key=f"lake/{key}", Body=SAMPLES["whatsapp"])
    throttle.times, throttle.attempts = lambda url: 1, Counter()
    for _ in range(2):
        r = post(http, "whatsapp", SAMPLES["whatsapp"])
        assert r.status_code == 200 and r.json_body["key"] == key
    assert keys(storage, "raw/source=whatsapp/") == [key] and storage.get(key) == SAMPLES["whatsapp"]
    assert waits and all(w >= 0 for w in waits)


def _times(url: str) -> int:
    """How often a request is throttled: twice for one request in ten, once for the others."""
    return 2 if zlib.crc32(url.encode()) % 10 == 0 else 1


def test_the_etl_rides_out_s3_throttling_and_gives_the_same_day(
        throttled_s3: tuple[Any, Any, Throttle, list[float]]) -> None:
    """Every S3 request of the ETL (lists, 32 concurrent reads, puts, deletes) answered SlowDown once, one in ten
    twice: botocore's retries carry the day through, with exactly the files of an unthrottled run."""
    client, plain, throttle, waits = throttled_s3
    batch = synthetic.deliveries(300, seed=41, day=DAY)
    clean = S3Storage(BUCKET, "lake", client=plain)
    synthetic.store(clean, batch)
    etl.run_day(clean, DAY)
    reference = {k: clean.get(k) for k in keys(clean, "enriched/")}
    for k in reference:
        clean.delete(k)

    throttle.times = _times
    result = etl.run_day(S3Storage(BUCKET, "lake", client=client), DAY)
    want_messages, want_statuses = synthetic.expected_rows(batch)
    assert (result.messages, result.statuses, result.rejects) == (len(want_messages), len(want_statuses), 0)
    assert {k: clean.get(k) for k in keys(clean, "enriched/")} == reference  # byte for byte
    assert all(n == _times(url) + 1 for (_, url), n in throttle.attempts.items())  # through after its SlowDowns
    methods = Counter(method for method, _ in throttle.attempts)
    # + versions + commit + the run manifest + forget's mentions index
    assert methods["GET"] >= result.deliveries and methods["PUT"] == len(layout.TABLES) + 4
    assert len(waits) == throttle.throttled  # one backoff asked for per SlowDown
    record_figure("faults: ETL under S3 throttling", f"{len(throttle.attempts)} S3 requests answered SlowDown "
                                                     f"{throttle.throttled} times; the day completed, identical to an "
                                                     "unthrottled run")


def test_persistent_s3_throttling_fails_the_day_clearly_after_bounded_attempts(
        throttled_s3: tuple[Any, Any, Throttle, list[float]]) -> None:
    """Reads throttled for good: a StorageError naming SlowDown after at most 9 attempts per read (no hang), and
    the day's earlier output is kept as it was. (botocore's retry quota, 500 tokens per client at 5 per throttled
    retry, stops retrying even sooner when many reads are throttled at once.)"""
    client, plain, throttle, _ = throttled_s3
    clean = S3Storage(BUCKET, "lake", client=plain)
    batch = synthetic.deliveries(200, seed=43, day=DAY)
    synthetic.store(clean, batch[:100])
    etl.run_day(clean, DAY)
    before = {k: clean.get(k) for k in keys(clean, "enriched/")}
    synthetic.store(clean, batch[100:])

    throttle.times, throttle.ops = lambda url: None, {"GetObject"}
    with pytest.raises(StorageError, match=r"cannot read s3://.*SlowDown") as failure:
        etl.run_day(S3Storage(BUCKET, "lake", client=client), DAY)
    assert max(throttle.attempts.values()) <= 9
    assert len(throttle.attempts) <= len({d.body for d in batch})  # only reads already in flight went on trying
    assert {k: clean.get(k) for k in keys(clean, "enriched/")} == before
    record_figure("faults: persistent S3 throttling", f"the day failed after {sum(throttle.attempts.values())} "
                                                      f"attempts on {len(throttle.attempts)} reads (at most "
                                                      f"{max(throttle.attempts.values())} each): "
                                                      f"{str(failure.value)[-90:]!r}; earlier output kept")


# --- the ETL process killed between writing the new day and cleaning up ---------------------------------------------

CHILD = textwrap.dedent("""
    # `chatlake etl`, except that deleting a file first says so, then waits to be killed.
    import sys, time
    from pathlib import Path
    from chatlake import cli
    from chalicelib import storage

    ready = Path(sys.argv[1])

    real_delete = storage.FolderStorage.delete

    def delete(self, key):
        if not key.startswith("enriched/"):  # the commit record, before the tables are written
            return real_delete(self, key)
        ready.write_text(key)
        time.sleep(120)
        raise SystemExit("not killed in time")

    storage.FolderStorage.delete = delete
    sys.exit(cli.main(sys.argv[2:]))
""")


def test_the_etl_killed_between_writing_and_cleaning_up_is_mended_by_a_rerun(tmp_path: Path) -> None:
    """SIGKILL (no cleanup handler can run) at the exact point where the new file is in place and a stale one
    of an older run is still there: a re-run of the real CLI leaves one file with the day's rows, once each."""
    root = tmp_path / "lake"
    storage = FolderStorage(root)
    batch = synthetic.deliveries(400, seed=47, day=DAY)
    synthetic.store(storage, batch[:200])
    etl.run_day(storage, DAY)
    prefix = layout.enriched_prefix("messages", DAY)
    stale = prefix + "part-from-an-older-version.parquet"  # an earlier run's file, under another name
    storage.put(stale, storage.get(prefix + etl.PART_NAME))
    storage.delete(prefix + etl.PART_NAME)
    synthetic.store(storage, batch[200:])

    env = {**os.environ, "DATALAKE_URL": str(root), "PYTHONPATH": str(PROJECT_DIR)}
    (tmp_path / "child.py").write_text(CHILD)
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(ready), "etl", "--date", str(DAY)],
                             cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the ETL never reached its cleanup"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert ready.read_text() == stale
    # the moment of the kill: the new file is complete and in place, the stale one not yet gone
    assert keys(storage, prefix) == sorted([prefix + etl.PART_NAME, stale])
    want_messages, want_statuses = synthetic.expected_rows(batch)
    assert set(message_keys(storage, DAY)) == want_messages
    assert "files are not those of its last run" in etl.behind_reason(storage, DAY)  # status flags the stale file

    rerun = subprocess.run([sys.executable, "-m", "chatlake", "etl", "--date", str(DAY)], cwd=PROJECT_DIR,
                           env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    for table in layout.TABLES:
        assert keys(storage, layout.enriched_prefix(table, DAY)) == [layout.enriched_prefix(table, DAY) + etl.PART_NAME]
    got = message_keys(storage, DAY)
    assert len(got) == len(want_messages) and set(got) == want_messages  # the day's rows, none doubled
    statuses = status_keys(storage, DAY)
    assert len(statuses) == len(want_statuses) and set(statuses) == want_statuses
    assert len(keys(storage, "raw/")) == len({(d.source, d.body) for d in batch})  # raw untouched


# --- corrupt Parquet files of earlier days ----------------------------------------------------------------------------

def _corrupt(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    how = rng.choice(["flip", "truncate", "zero-run", "garbage-run"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif how == "truncate":
        del out[rng.randrange(len(out)):]
    else:
        at, n = rng.randrange(len(out)), rng.randint(1, 64)
        out[at:at + n] = bytes(n) if how == "zero-run" else rng.randbytes(n)
    return bytes(out)


CORRUPTIONS = 1500


def test_corrupt_version_files_are_rebuilt_from_raw_and_never_stop_the_day(tmp_path: Path) -> None:
    """Seeded random damage (bit flips, truncation, overwritten runs) to an earlier day's versions file, which the
    duplicate check reads, plus files that are not Parquet or have other columns or types: each read gives the
    exact versions or none (then the day re-reads the raw data), never wrong ones and never an abort."""
    import pyarrow as pa

    storage = FolderStorage(tmp_path)
    earlier = DAY - timedelta(days=1)
    synthetic.store(storage, synthetic.deliveries(200, seed=53, day=earlier))
    etl.run_day(storage, earlier)
    path = layout.versions_key(earlier)
    good = storage.get(path)
    listing, mark = etl.list_raw(storage, earlier), etl.pii_mark(None)
    exact = etl.read_versions(storage, listing, mark)
    assert exact is not None and exact[0] and exact[1]
    rng = random.Random(20261124)
    outcomes: Counter[str] = Counter()
    odd_files = {
        "empty": b"",
        "not parquet": b"PAR1 not parquet PAR1",
        "other columns": _parquet(pa.table({"x": [1, 2]})),
        "at as text": _parquet(pa.table({c: ["soon"] for c in ("table", "source", "id", "at", "kind")})),
    }
    for damaged in [_corrupt(good, rng) for _ in range(CORRUPTIONS)] + list(odd_files.values()):
        storage.put(path, damaged)
        found = etl.read_versions(storage, listing, mark)  # must not raise, whatever the damage
        assert found is None or found == exact
        outcomes["rebuilt from raw" if found is None else "read intact"] += 1

    # and the whole day goes on, with the same rows as with the good file
    synthetic.store(storage, synthetic.deliveries(100, seed=59, day=DAY))
    etl.run_day(storage, DAY)
    want = {t: storage.get(layout.part_key(t, DAY)) for t in layout.TABLES}
    storage.put(path, _corrupt(good, rng)[:100])
    result = etl.run_day(storage, DAY)
    assert result.messages > 0 and {t: storage.get(layout.part_key(t, DAY)) for t in layout.TABLES} == want
    assert storage.get(path) != good[:100] and etl.read_versions(storage, listing, mark) == exact  # rebuilt
    record_figure("faults: corrupt version files", f"{CORRUPTIONS + len(odd_files)} damaged files read by the "
                                                   f"duplicate check, never a wrong answer or an abort: " + ", ".join(
                                                       f"{v} {k}" for k, v in sorted(outcomes.items())))


def _parquet(table: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
