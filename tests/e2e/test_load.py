"""Load: concurrent clients post signed deliveries to the real local stack over HTTP; nothing is lost or doubled.

Bounded by a fixed count (no duration): `CLIENTS` threads share `DELIVERIES` synthetic deliveries of both
platforms, exact retries included, each answered before the next is sent on that client's keep-alive
connection. Then the raw layer must hold each distinct body exactly once and the ETL must give exactly
the rows the generator says were sent. Throughput is measured and reported (never asserted).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq

from chalicelib import etl, layout
from chalicelib.storage import FolderStorage
from chalicelib.webhook import whatsapp_signature
from chatlake.local import synthetic
from tests.conftest import SECRETS, record_figure
from tests.e2e.test_server import local_stack, output

CLIENTS = 8
DELIVERIES = 1500
SEED = 20261124


def _post_all(base: str, batch: list[synthetic.Delivery]) -> tuple[list[tuple[int, dict]], list[float]]:
    """One client: its deliveries in order, one connection each; (status, reply) and latency of each."""
    url = urlparse(base)
    replies: list[tuple[int, dict]] = []
    latencies: list[float] = []
    for d in batch:
        started = time.perf_counter()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.request("POST", f"/{d.source}", body=d.body, headers={**d.headers(SECRETS), "Connection": "close"})
            response = conn.getresponse()
            replies.append((response.status, json.loads(response.read())))
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started)
    return replies, latencies


def test_concurrent_signed_deliveries_are_all_stored_once_and_give_every_row(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    today = datetime.now(UTC).date()
    sent = synthetic.deliveries(DELIVERIES, seed=SEED, day=today, retry_rate=0.05)
    shares = [sent[i::CLIENTS] for i in range(CLIENTS)]
    results: list[tuple[list[tuple[int, dict]], list[float]] | BaseException] = [RuntimeError("not run")] * CLIENTS

    def client(i: int) -> None:
        try:
            results[i] = _post_all(base, shares[i])
        except BaseException as e:  # reported by the main thread
            results[i] = e

    with local_stack(lake_dir) as (base, proc):
        threads = [threading.Thread(target=client, args=(i,), name=f"load-client-{i}") for i in range(CLIENTS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.perf_counter() - started
        assert not any(t.is_alive() for t in threads), "a load client did not finish within 120 s"
        server_log = output(proc)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    answered = {id(d): reply for i, (replies, _) in enumerate(results) for d, reply in zip(shares[i], replies,
                                                                                            strict=True)}
    latencies = [x for _, lat in results for x in lat]
    # every request answered 200 with the content address of its own body (no answer meant for another request)
    for d in sent:
        status, reply = answered[id(d)]
        assert status == 200, (status, reply)
        assert reply["key"].split("/")[-1] == layout.digest(d.body) + ".json"
        assert reply["key"].startswith(f"raw/source={d.source}/dt=")

    # the raw layer: each distinct delivery exactly once, byte for byte, and no temp files left
    storage = FolderStorage(lake_dir)
    distinct = {(d.source, d.body) for d in sent}
    stored = sorted(storage.keys("raw/"))
    want = {f"{d.source}/{layout.digest(d.body)}" for d in sent}
    assert len(stored) == len(distinct) == len(want)
    assert {f"{layout.source_of(k)}/{k.rsplit('/', 1)[1].removesuffix('.json')}" for k in stored} == want
    bodies = {(layout.source_of(k), storage.get(k)) for k in stored}
    assert bodies == distinct
    leftovers = [name for _, _, names in os.walk(lake_dir) for name in names if name.startswith(".")]
    assert leftovers == []

    # the ETL over the day(s) received (the run may cross midnight UTC): exactly the rows that were sent
    days = sorted({layout.day_of(k) for k in stored})
    runs = etl.run_days(storage, days)
    want_messages, want_statuses = synthetic.expected_rows(sent)
    got_messages: list[tuple] = []
    got_statuses: list[tuple] = []
    for day in days:
        m = pq.read_table(lake_dir / layout.enriched_prefix("messages", day) / etl.PART_NAME)
        s = pq.read_table(lake_dir / layout.enriched_prefix("statuses", day) / etl.PART_NAME)
        got_messages += zip(m.column("source").to_pylist(), m.column("message_id").to_pylist(),
                            m.column("edited_at").cast("int64").to_pylist(), strict=True)
        got_statuses += zip(s.column("message_id").to_pylist(), s.column("status").to_pylist(), strict=True)
    assert len(got_messages) == len(want_messages) and set(got_messages) == want_messages
    assert len(got_statuses) == len(want_statuses) and set(got_statuses) == want_statuses
    assert sum(r.rejects for r in runs) == 0

    # what the server printed under load holds no secret and no valid signature
    for secret in SECRETS.values():
        assert secret not in server_log
    assert not any(whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], d.body) in server_log for d in sent)
    assert "Traceback" not in server_log

    latencies.sort()
    lost = len(distinct) - len(stored)
    record_figure("load", f"{DELIVERIES} signed deliveries ({len(distinct)} distinct, "
                          f"{DELIVERIES - len(distinct)} exact retries) from {CLIENTS} concurrent HTTP clients to the "
                          f"local stack: {DELIVERIES / elapsed:.0f} deliveries/s, latency p50 "
                          f"{statistics.median(latencies) * 1000:.1f} ms, p99 "
                          f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; all 200, lost {lost}, "
                          f"doubled 0; ETL rows = sent ({len(want_messages)} messages, {len(want_statuses)} statuses)")
