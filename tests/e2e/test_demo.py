"""`demo`: starts the local stack when none runs, posts today's signed traffic over HTTP, stores the six days before,
runs the ETL for the week, queries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq

from chatlake.local import synthetic
from chatlake.local.demo import healthy
from tests.conftest import PROJECT_DIR, SECRETS, free_port


def test_demo_end_to_end_on_a_temp_lake(tmp_path):
    """A week of traffic, as the README's report picture shows: today's share through the webhooks over HTTP,
    the six days before stored into their own raw partitions, then the ETL for each of the seven days."""
    port = free_port()
    env = {**os.environ, **SECRETS, "DATALAKE_URL": str(tmp_path / "lake")}
    out = subprocess.run([sys.executable, "-m", "chatlake", "demo", "--deliveries", "120", "--port", str(port)],
                         cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Starting the local stack" in out.stdout
    posted = int(re.search(r"Posting today's (\d+) signed deliveries", out.stdout).group(1))
    assert 5 <= posted <= 40 and f"Answers: {posted} x 200" in out.stdout  # the webhooks did take today's share
    assert "of the 6 days before today straight into the raw layer" in out.stdout
    assert not healthy(f"http://127.0.0.1:{port}")  # it stopped what it started
    today = datetime.now(UTC).date()
    week = {str(today - timedelta(days=back)) for back in range(7)}
    for source in ("telegram", "whatsapp"):
        assert {p.name[3:] for p in (tmp_path / "lake" / "raw" / f"source={source}").glob("dt=*")} == week
    raw = list((tmp_path / "lake" / "raw").rglob("*.json"))
    assert 100 <= len(raw) <= 120  # exact retries are stored once
    parts = sorted((tmp_path / "lake" / "enriched" / "messages").glob("dt=*/part-0.parquet"))
    assert {p.parent.name[3:] for p in parts} == week  # the ETL ran for every day
    rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    assert min(rows) > 0 and sum(rows) > 60
    for n in rows:
        assert f" {n:,} " in out.stdout  # the ETL's table, a row per day
    for name in ("messages_per_day", "message_types", "delivery_funnel", "first_response_time"):
        assert f"\n{name}: " in out.stdout
    assert "Next:" in out.stdout and "report" in out.stdout
    for secret in SECRETS.values():
        assert secret not in out.stdout + out.stderr


def test_a_week_of_synthetic_traffic_is_one_world():
    """`days=7`: every day gets deliveries (fewer at the weekend), today last, and the same chats recur, so that
    the report's top chats are chats of the week, not seven strangers of the same name."""
    today = date(2026, 12, 1)  # a Tuesday
    batch = synthetic.deliveries(700, seed=5, day=today, days=7)
    per_day = Counter(d.day for d in batch)
    assert sorted(per_day) == synthetic.calendar(today, 7) and sum(per_day.values()) == 700
    assert per_day[date(2026, 11, 29)] < per_day[date(2026, 11, 27)]  # a Sunday is quieter than a Friday
    groups = defaultdict(set)
    for d in batch:
        update = json.loads(d.body)
        chat = (update.get("message") or {}).get("chat", {})
        if chat.get("type") in ("group", "supergroup"):
            groups[chat["id"]].add(d.day)
    assert groups and max(len(days) for days in groups.values()) >= 5
    assert synthetic.day_shares(3, synthetic.calendar(today, 3)) == [1, 1, 1]  # enough for one a day: one a day


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
        # both platforms' secrets differ: today's few deliveries may all be of one platform (the seed is the clock)
        env = {**os.environ, **SECRETS, "WHATSAPP_APP_SECRET": "not-the-stacks",
               "TELEGRAM_SECRET_TOKEN": "not-the-stacks", "DATALAKE_URL": str(tmp_path)}
        out = subprocess.run([sys.executable, "-m", "chatlake", "demo", "--deliveries", "20", "--port",
                              base.rsplit(":", 1)[1]], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                             timeout=180)
    assert out.returncode == 1 and "same secrets" in out.stderr
