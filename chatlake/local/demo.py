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
from chatlake.local.stack import GENERATED_SECRETS, PROJECT_DIR, ensure_dotenv, stop

CLIENTS = 8  # concurrent senders, like a platform delivering to several Lambda instances


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
    else:
        print(f"Starting the local stack at {base_url} ...", flush=True)
        started, _ = start_stack(port)
    try:
        now = datetime.now(UTC)
        batch = synthetic.deliveries(deliveries, seed=int(now.timestamp()) if seed is None else seed, until=now)
        kinds = Counter(d.source for d in batch)
        print(f"Posting {len(batch)} signed deliveries ({kinds['telegram']} Telegram, {kinds['whatsapp']} WhatsApp, "
              f"{len({d.kind for d in batch})} kinds, exact retries included) with {CLIENTS} clients ...", flush=True)
        answers = send(base_url, batch, secrets)
        print("Answers: " + ", ".join(f"{n} x {status}" for status, n in sorted(answers.items())))
        if set(answers) != {200}:
            print("error: some deliveries were refused; is the running stack using the same secrets (.env) and "
                  "DATALAKE_URL as this demo?", file=sys.stderr)
            return 1
    finally:
        if started is not None:
            stop(started)
    storage = runtime.storage()
    result = etl.run_day(storage, now.date(), settings.pii_salt())
    ui.print_table([result.as_dict()], ["day", "deliveries", "messages", "statuses", "rejects", "duplicates",
                                        "seconds"], title=f"Today's ETL on {storage.url}")
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
