"""End to end: the real local stack (`chatlake serve`, what `make run` starts) over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from chalicelib import layout
from chalicelib.webhook import whatsapp_signature
from chatlake.local import synthetic
from chatlake.local.demo import start_stack
from chatlake.local.stack import stop
from tests.conftest import PROJECT_DIR, SECRETS, free_port


def output(proc: subprocess.Popen) -> str:
    """What the stack printed so far (stdout and stderr)."""
    return Path(proc.output_path).read_text()  # type: ignore[attr-defined]


@contextmanager
def local_stack(lake_dir: Path, extra_env: dict[str, str] | None = None):
    """The stack on a free port, started the way the demo starts it, and always stopped."""
    port = free_port()
    env = {**os.environ, **SECRETS, "DATALAKE_URL": str(lake_dir), **(extra_env or {})}
    proc, log_path = start_stack(port, env, lake_dir.parent / f"stack-{port}.log")
    proc.output_path = log_path  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_real_server_stores_signed_deliveries(tmp_path: Path):
    samples = synthetic.samples(int(time.time()))
    with local_stack(tmp_path / "lake") as (base, proc):
        status, reply = http_post(f"{base}/whatsapp", samples["whatsapp"], {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], samples["whatsapp"])})
        assert status == 200 and reply["ok"] is True
        wa_key = reply["key"]
        status, reply = http_post(f"{base}/telegram", samples["telegram"], {
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRETS["TELEGRAM_SECRET_TOKEN"]})
        assert status == 200
        tg_key = reply["key"]
        status, reply = http_post(f"{base}/telegram", samples["telegram"], {"Content-Type": "application/json"})
        assert status == 401
        status, reply = http_post(f"{base}/whatsapp", b"\xff not json", {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], b"\xff not json")})
        assert status == 400 and "quarantine/source=whatsapp/" in reply["error"]
    assert proc.returncode == 0
    assert wa_key.startswith("raw/source=whatsapp/dt=") and tg_key.startswith("raw/source=telegram/dt=")
    assert (tmp_path / "lake" / wa_key).read_bytes() == samples["whatsapp"]
    assert (tmp_path / "lake" / tg_key).read_bytes() == samples["telegram"]
    assert tg_key.endswith(layout.digest(samples["telegram"]) + ".json")
    printed = output(proc)
    assert "curl" in printed and "/whatsapp" in printed
    for secret in SECRETS.values():
        assert secret not in printed


def test_server_refuses_to_start_with_a_malformed_telegram_secret(tmp_path: Path):
    env = {**os.environ, **SECRETS, "TELEGRAM_SECRET_TOKEN": "not valid!", "DATALAKE_URL": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "chatlake", "serve", "--port", str(free_port())], cwd=PROJECT_DIR,
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "TELEGRAM_SECRET_TOKEN must be" in out.stderr


def test_the_local_stack_catches_up_the_daily_etl_and_stops_on_ctrl_c(tmp_path: Path):
    """`chalice local` runs no schedules: the local stack runs the daily ETL itself, and on start it
    catches up recent days whose raw data has no output yet."""
    from chalicelib import etl
    from chalicelib.storage import FolderStorage
    from chatlake import status

    storage = FolderStorage(tmp_path / "lake")
    day = etl.yesterday()
    batch = synthetic.deliveries(40, seed=9, day=day)
    synthetic.store(storage, batch)
    with local_stack(tmp_path / "lake") as (_, proc):
        deadline = time.monotonic() + 30
        while status.is_behind(storage, day):
            assert time.monotonic() < deadline, "the local stack did not run the ETL for yesterday"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(15)
    assert proc.returncode == 0
    printed = output(proc)
    assert f"[etl] {day}: 40 deliveries" in printed and "00:05 UTC" in printed
    written = pq.ParquetFile(tmp_path / "lake" / f"enriched/messages/dt={day}/part-0.parquet").read()
    assert written.num_rows == len(synthetic.expected_rows(batch)[0])


def test_next_run_is_shortly_after_midnight_utc():
    from datetime import UTC, datetime

    from chatlake.local.stack import seconds_until_next_run

    assert seconds_until_next_run(datetime(2026, 11, 24, 0, 0, tzinfo=UTC)) == 5 * 60
    assert seconds_until_next_run(datetime(2026, 11, 24, 0, 5, tzinfo=UTC)) == 24 * 3600
    assert seconds_until_next_run(datetime(2026, 11, 24, 23, 0, tzinfo=UTC)) == 3600 + 5 * 60
