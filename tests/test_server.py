"""End to end: the real local stack (`python -m chalicelib serve`, what `make run` starts) over HTTP."""

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

from chalicelib import lake, synthetic
from chalicelib.webhook import whatsapp_signature
from tests.conftest import PROJECT_DIR, SECRETS, free_port


@contextmanager
def local_stack(lake_dir: Path, extra_env: dict[str, str] | None = None):
    """Start the stack on a free port, wait for /health, and always stop it."""
    port = free_port()
    env = {**os.environ, **SECRETS, "DATALAKE_URL": str(lake_dir), **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib", "serve", "--port", str(port)], cwd=PROJECT_DIR,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    assert json.load(r) == {"ok": True}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the local stack did not answer /health within 30 s"
                time.sleep(0.2)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    assert tg_key.endswith(lake.digest(samples["telegram"]) + ".json")
    output = proc.stdout.read()
    assert "curl" in output and "/whatsapp" in output
    for secret in SECRETS.values():
        assert secret not in output


def test_server_refuses_to_start_with_a_malformed_telegram_secret(tmp_path: Path):
    env = {**os.environ, **SECRETS, "TELEGRAM_SECRET_TOKEN": "not valid!", "DATALAKE_URL": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "chalicelib", "serve", "--port", str(free_port())], cwd=PROJECT_DIR,
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "TELEGRAM_SECRET_TOKEN must be" in out.stderr
