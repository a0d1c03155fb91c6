"""`demo`: starts the local stack when none runs, posts signed traffic over HTTP, runs today's ETL, queries."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pyarrow.parquet as pq

from chatlake.local.demo import healthy
from tests.conftest import PROJECT_DIR, SECRETS, free_port


def test_demo_end_to_end_on_a_temp_lake(tmp_path):
    port = free_port()
    env = {**os.environ, **SECRETS, "DATALAKE_URL": str(tmp_path / "lake")}
    out = subprocess.run([sys.executable, "-m", "chatlake", "demo", "--deliveries", "120", "--port", str(port)],
                         cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Starting the local stack" in out.stdout and "Answers: 120 x 200" in out.stdout
    assert not healthy(f"http://127.0.0.1:{port}")  # it stopped what it started
    today = datetime.now(UTC).date()
    raw = list((tmp_path / "lake" / "raw").rglob("*.json"))
    assert 100 <= len(raw) <= 120  # exact retries are stored once
    messages = pq.ParquetFile(tmp_path / "lake" / f"enriched/messages/dt={today}/part-0.parquet").read()
    assert messages.num_rows > 60
    assert f"{messages.num_rows:,}" in out.stdout  # the ETL's table
    for name in ("messages_per_day", "message_types", "delivery_funnel", "first_response_time"):
        assert f"\n{name}: " in out.stdout
    assert "Next:" in out.stdout and "report" in out.stdout
    for secret in SECRETS.values():
        assert secret not in out.stdout + out.stderr


def test_demo_uses_a_running_stack(tmp_path):
    from tests.e2e.test_server import local_stack

    with local_stack(tmp_path / "lake") as (base, _proc):
        port = base.rsplit(":", 1)[1]
        env = {**os.environ, **SECRETS, "DATALAKE_URL": str(tmp_path / "lake")}
        out = subprocess.run([sys.executable, "-m", "chatlake", "demo", "--deliveries", "30", "--port", port],
                             cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "Using the local stack already running" in out.stdout
        assert healthy(base)  # left running: the demo did not start it


def test_demo_with_other_secrets_than_the_stack_says_what_to_check(tmp_path):
    from tests.e2e.test_server import local_stack

    with local_stack(tmp_path / "lake") as (base, _proc):
        env = {**os.environ, **SECRETS, "WHATSAPP_APP_SECRET": "not-the-stacks", "DATALAKE_URL": str(tmp_path)}
        out = subprocess.run([sys.executable, "-m", "chatlake", "demo", "--deliveries", "20", "--port",
                              base.rsplit(":", 1)[1]], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                             timeout=180)
    assert out.returncode == 1 and "same secrets" in out.stderr
