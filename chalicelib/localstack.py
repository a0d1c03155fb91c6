"""The local stack behind `make run`: `.env` with random secrets, `chalice local`, and a first-delivery hint."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import settings as settings_module
from . import synthetic
from .settings import ConfigError
from .webhook import whatsapp_signature

PROJECT_DIR = Path(__file__).resolve().parent.parent
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
        settings_module._dotenv_cache.pop(str(path), None)
    return missing


def first_delivery_hint(base_url: str, settings: settings_module.Settings) -> str:
    samples = synthetic.samples(int(time.time()))
    wa_body = samples["whatsapp"].decode()
    sig = whatsapp_signature(settings.require("WHATSAPP_APP_SECRET"), samples["whatsapp"])
    return "\n".join([
        "Post a signed WhatsApp delivery (the signature is computed for this exact body):",
        f"  curl -sS {base_url}/whatsapp -H 'Content-Type: application/json' \\",
        f"    -H 'X-Hub-Signature-256: {sig}' \\",
        f"    --data-binary {shlex.quote(wa_body)}",
        "Post a Telegram delivery (the secret token is read from .env, not printed):",
        f"  curl -sS {base_url}/telegram -H 'Content-Type: application/json' \\",
        "    -H \"X-Telegram-Bot-Api-Secret-Token: $(sed -n 's/^TELEGRAM_SECRET_TOKEN=//p' .env)\" \\",
        f"    --data-binary {shlex.quote(samples['telegram'].decode())}",
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
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base_url = f"http://{host}:{port}"
    print(f"chatlake local stack: data lake {settings.datalake_url}")
    print(f"  health:    GET  {base_url}/health")
    print(f"  telegram:  POST {base_url}/telegram")
    print(f"  whatsapp:  GET/POST {base_url}/whatsapp")
    print(first_delivery_hint(base_url, settings))
    print("Ctrl-C stops everything.", flush=True)

    chalice = Path(sys.executable).with_name("chalice")
    cmd = [str(chalice), "--project-dir", str(PROJECT_DIR), "local", "--stage", stage,
           "--host", host, "--port", str(port), "--no-autoreload"]
    server = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(server)


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
