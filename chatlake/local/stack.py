"""The local stack behind `make run`: `.env` with random secrets, chalice's local server (`localserver.py`), the
daily ETL, and a first-delivery hint."""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chalicelib import runtime
from chalicelib import settings as settings_module
from chalicelib.settings import ConfigError
from chatlake import PROJECT_DIR
from chatlake.local import synthetic

GENERATED_SECRETS = ("TELEGRAM_SECRET_TOKEN", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET")


def ensure_dotenv(path: Path) -> list[str]:
    """Create `.env` with random secrets for what neither it nor the environment sets; return what was added."""
    existing = settings_module.read_dotenv(str(path)) if path.exists() else {}
    missing = [n for n in GENERATED_SECRETS if not os.environ.get(n) and not existing.get(n)]
    if missing:
        lines = [f"{name}={secrets.token_urlsafe(32)}\n" for name in missing]
        header = [] if path.exists() else ["# chatlake local secrets (git-ignored). The environment wins.\n"]
        with path.open("a") as f:
            f.writelines(header + lines)
        path.chmod(0o600)
        settings_module.reset()  # the next read sees the secrets just written
    return missing


def first_delivery_hint(base_url: str) -> str:
    """A shell script (prose as comments) that posts one delivery per platform. It prints no secret and no valid
    signature: the commands read the secrets from the environment or `.env` when they run, as `serve` does."""
    samples = synthetic.samples(int(time.time()))
    secret = lambda name: f"${{{name}:-$(sed -n 's/^{name}=//p' .env)}}"  # noqa: E731
    return "\n".join([
        "# Post a signed WhatsApp delivery (the signature is computed from the secret in .env as it runs):",
        f"body={shlex.quote(samples['whatsapp'].decode())}",
        f"curl -sS {base_url}/whatsapp -H 'Content-Type: application/json' \\",
        "  -H \"X-Hub-Signature-256: sha256=$(printf '%s' \"$body\" | openssl dgst -sha256 -hmac "
        f"\"{secret('WHATSAPP_APP_SECRET')}\" | sed 's/^.* //')\" \\",
        "  --data-binary \"$body\"; echo",
        "# Post a Telegram delivery (the secret token is read from .env, not printed):",
        f"curl -sS {base_url}/telegram -H 'Content-Type: application/json' \\",
        f"  -H \"X-Telegram-Bot-Api-Secret-Token: {secret('TELEGRAM_SECRET_TOKEN')}\" \\",
        f"  --data-binary {shlex.quote(samples['telegram'].decode())}; echo",
    ])


def serve(host: str, port: int, stage: str = "local") -> int:
    """Run the local stack until Ctrl-C (or SIGTERM); return the exit code."""
    os.chdir(PROJECT_DIR)
    added = ensure_dotenv(PROJECT_DIR / ".env")
    if added:
        print(f"Wrote random {', '.join(added)} to .env (git-ignored; the environment wins over it).")
    settings = settings_module.load()
    try:
        settings.telegram_secret_token()
        settings.require("WHATSAPP_APP_SECRET")
        runtime.storage(settings.datalake_url)  # a malformed DATALAKE_URL: refused now, not at the first delivery
        interval = settings.etl_interval_minutes
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if problem := listen_problem(host, port):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    base_url = f"http://{host}:{port}"
    print(f"chatlake local stack: data lake {settings.datalake_url}")
    print(f"  health:    GET  {base_url}/health")
    print(f"  telegram:  POST {base_url}/telegram")
    print(f"  whatsapp:  GET/POST {base_url}/whatsapp")
    print(first_delivery_hint(base_url))
    hour, minute = runtime.DAILY_ETL_AT
    print(f"The daily ETL runs at {hour:02d}:{minute:02d} UTC for the day before "
          "(now: chatlake etl --date YYYY-MM-DD).")
    print(f"Intraday runs add today's new deliveries every {interval} min "
          "(now: chatlake refresh).")
    print("Ctrl-C stops everything.", flush=True)

    # chalice's local server classes with a chunk-aware, bounded body reader (chatlake/local/server.py): the
    # `chalice local` CLI reads only Content-Length bytes, and would lose a chunked delivery from a tunnel.
    cmd = [sys.executable, "-m", "chatlake.local.server", "--stage", stage, "--host", host, "--port", str(port)]
    server = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, _interrupt)
    stopping = threading.Event()
    scheduler = threading.Thread(target=etl_scheduler, args=(stopping,), name="daily-etl", daemon=True)
    scheduler.start()
    threading.Thread(target=intraday_scheduler, args=(stopping, interval), name="intraday-etl",
                     daemon=True).start()
    threading.Thread(target=media_scheduler, args=(stopping,), name="media-capture", daemon=True).start()
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stopping.set()
        stop(server)


def listen_problem(host: str, port: int, target: str = "run") -> str | None:
    """Why the local server could not listen on host:port (None: it can). Checked before it starts, so that a
    busy port is one line rather than the server's traceback; the server maps its own bind error the same way."""
    try:
        socket.create_server((host, port)).close()  # SO_REUSEADDR, as the server binds
    except OSError as e:
        return cannot_listen(e, host, port, target)
    return None


def cannot_listen(error: OSError, host: str, port: int, target: str = "run") -> str:
    """One line for a failed bind; `target` is the make target that takes PORT= (run, demo)."""
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use: stop the other server or use make {target} PORT=…"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def seconds_until_next_run(now: datetime) -> float:
    hour, minute = runtime.DAILY_ETL_AT
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return (at - now).total_seconds()


def etl_scheduler(stopping: threading.Event) -> None:
    """What EventBridge does in AWS: shortly after midnight UTC, run every day of the retry window that is behind
    (yesterday, and any day a failed run or a late delivery left behind); the same once on start."""
    while not stopping.is_set():
        try:
            for result in runtime.run_daily_etl():
                print(f"[etl] {result.summary()}", flush=True)
        except Exception as e:  # the webhooks keep running; say what failed and how to retry
            print(f"[etl] failed: {e}. It is retried at the next run; now: chatlake status",
                  file=sys.stderr, flush=True)
        if stopping.wait(seconds_until_next_run(datetime.now(UTC))):
            return


def intraday_scheduler(stopping: threading.Event, interval_minutes: int) -> None:
    """What the `intraday_etl` schedule does in AWS: every `interval_minutes`, add today's new deliveries. The
    first run waits one interval, so that it never overlaps the start-up catch-up."""
    while not stopping.wait(interval_minutes * 60):
        try:
            for result in runtime.run_intraday_etl():
                if result.deliveries:
                    print(f"[refresh] {result.summary()}", flush=True)
        except Exception as e:  # the webhooks keep running; say what failed and how to retry
            print(f"[refresh] failed: {e}. It is retried at the next run; now: chatlake refresh",
                  file=sys.stderr, flush=True)
def media_scheduler(stopping: threading.Event) -> None:
    """What the media_capture schedule does in AWS: every few minutes, capture the media of the last 7 days' messages
    (nothing while MEDIA_CAPTURE is off, or unset without a media token)."""
    while not stopping.is_set():
        try:
            for result in runtime.run_media_capture():
                if result.found or result.attempted:
                    print(f"[media] {result.summary()}", flush=True)
        except Exception as e:  # the webhooks keep running; say what failed
            print(f"[media] failed: {e}. It is retried at the next run; now: chatlake media fetch",
                  file=sys.stderr, flush=True)
        if stopping.wait(runtime.MEDIA_EVERY_MINUTES * 60):
            return


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a child politely, then firmly."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
