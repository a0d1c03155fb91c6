"""`make demo`: signed synthetic traffic through the local stack, the ETL and a few queries, so a newcomer
sees the whole pipeline work in a minute."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from chalicelib import runtime
from chalicelib.settings import Settings
from chatlake import ui
from chatlake.local import synthetic
from chatlake.local.stack import GENERATED_SECRETS, PROJECT_DIR, ensure_dotenv, listen_problem, stop
from chatlake.report.charts import counted

CLIENTS = 8  # concurrent senders, like a platform delivering to several Lambda instances
DEMO_DAYS = 7  # a week of traffic, today included: what the README's report picture shows


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as r:
            return json.load(r) == {"ok": True}
    except (OSError, ValueError):
        return False


def start_stack(port: int, env: dict[str, str] | None = None, log_path: Path | None = None,
                timeout: float = 30) -> tuple[subprocess.Popen, Path]:
    """Start `chatlake serve` in the background and wait until it answers /health. Its output goes
    to a log file, never a pipe: a busy server must not block on a full pipe."""
    log_path = log_path or Path(tempfile.mkstemp(prefix="chatlake-stack-", suffix=".log")[1])
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "chatlake", "serve", "--port", str(port)],
                                cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not healthy(f"http://127.0.0.1:{port}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the local stack did not start; its output is in {log_path}:\n"
                               f"{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, log_path


def post(base_url: str, delivery: synthetic.Delivery, secrets: dict[str, str]) -> int:
    request = urllib.request.Request(f"{base_url}/{delivery.source}", data=delivery.body,
                                     headers=delivery.headers(secrets), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def send(base_url: str, batch: list[synthetic.Delivery], secrets: dict[str, str]) -> Counter[int]:
    """Post every delivery (concurrently, in order of submission) with a progress bar; count the answers."""
    answers: Counter[int] = Counter()
    with ui.progress_bar("posting signed deliveries", unit="deliveries", total=len(batch)) as advance, \
            ThreadPoolExecutor(CLIENTS) as pool:
        for done, status in enumerate(pool.map(lambda d: post(base_url, d, secrets), batch), 1):
            answers[status] += 1
            advance(done, len(batch))
    return answers


def run(deliveries: int, port: int = 8000, seed: int | None = None) -> int:
    """The whole demo; returns the exit code."""
    from chalicelib import etl

    base_url = f"http://127.0.0.1:{port}"
    ensure_dotenv(PROJECT_DIR / ".env")  # the stack and the demo then sign with the same secrets
    settings = runtime.settings()
    secrets = {name: settings.require(name) for name in GENERATED_SECRETS}
    started = None
    if healthy(base_url):
        print(f"Using the local stack already running at {base_url}.")
    elif problem := listen_problem("127.0.0.1", port, target="demo"):
        print(f"error: {problem}", file=sys.stderr)  # not a chatlake stack: nothing to post to, nowhere to start one
        return 2
    else:
        print(f"Starting the local stack at {base_url} ...", flush=True)
        started, _ = start_stack(port)
    now = datetime.now(UTC)
    days = min(DEMO_DAYS, deliveries)  # at least one delivery a day
    batch = synthetic.deliveries(deliveries, seed=int(now.timestamp()) if seed is None else seed, until=now, days=days)
    live = [d for d in batch if d.day == now.date()]  # the webhook files a delivery by the day it arrives:
    earlier = [d for d in batch if d.day != now.date()]  # earlier days' go straight to their raw partitions
    try:
        kinds = Counter(d.source for d in live)
        print(f"Posting today's {counted(len(live), 'signed delivery', 'signed deliveries')} "
              f"({kinds['telegram']} Telegram, {kinds['whatsapp']} WhatsApp, "
              f"{counted(len({d.kind for d in live}), 'kind')}, exact retries included) with {CLIENTS} clients ...",
              flush=True)
        answers = send(base_url, live, secrets)
        print("Answers: " + ", ".join(f"{n} x {status}" for status, n in sorted(answers.items())))
        if set(answers) != {200}:
            print("error: some deliveries were refused; is the running stack using the same secrets (.env) and "
                  "DATALAKE_URL as this demo?", file=sys.stderr)
            return 1
    finally:
        if started is not None:
            stop(started)
    ctx = runtime.etl_context(settings)
    if earlier:
        stored = synthetic.store(ctx.storage, earlier)
        print(f"Stored {counted(stored, 'delivery', 'deliveries')} of the {counted(days - 1, 'day')} before today "
              f"straight into the raw layer, as the webhook would have on those days.")
    results = etl.run_days(ctx.storage, synthetic.calendar(now.date(), days), ctx.pii_salt, window=ctx.window)
    ui.print_table([r.as_dict() for r in results], etl.RESULT_COLUMNS, title=f"The ETL per day on {ctx.storage.url}")
    show_analytics(settings)
    print("\nNext:")
    print("  .venv/bin/chatlake query top_chats        any sql/analytics file, or your own SQL")
    print("  .venv/bin/chatlake report                 report.html: charts of the traffic, offline")
    print("  .venv/bin/chatlake status                 what the lake holds per day")
    print("  make run                                              the local stack, ready for real webhooks")
    return 0


DEMO_QUERIES = ("messages_per_day", "message_types", "delivery_funnel", "first_response_time")


def show_analytics(settings: Settings) -> None:
    """A few of the analytics pack's answers, as tables."""
    from chatlake import query

    engine = query.duckdb_engine(runtime.storage(settings.datalake_url))
    files = {f.name: f for f in query.analytics()}
    for name in DEMO_QUERIES:
        print(f"\n{name}: {files[name].description}")
        query.write_result(engine.run(files[name].statement), "table", sys.stdout)
