"""The local stack refuses what it cannot run with in one line, never a traceback: a port in use (`make run`,
`make demo`, the server itself) and a malformed DATALAKE_URL (`make run`, and the webhook, which answers 503)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from chalice.test import Client

from chatlake.local.synthetic import samples
from tests.conftest import PROJECT_DIR, SECRETS


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on (127.0.0.1 only)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s.getsockname()[1]


def run(argv: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    # The secrets come from the environment, so `serve` and `demo` write no `.env` into the checkout.
    env = {**os.environ, **SECRETS, "DATALAKE_URL": str(tmp_path / "lake"), **env}
    return subprocess.run([sys.executable, "-m", *argv], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("argv", "target"), [
    (["chatlake", "serve"], "run"),
    (["chatlake", "demo", "--deliveries", "5"], "demo"),
    (["chatlake.local.server"], "run"),  # its own bind, had the port been taken after serve looked
])
def test_a_port_in_use_is_one_line(argv, target, busy_port, tmp_path):
    out = run([*argv, "--port", str(busy_port)], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == f"error: port {busy_port} is in use: stop the other server or use make {target} PORT=…\n"
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(("url", "says"), [
    ("~/lake", "~ is not expanded here: use an absolute path or $HOME/lake"),
    ("s3:/x", "is not a valid s3:// URL"),
    ("gs://bucket", "uses gs://, which is not supported"),
])
def test_make_run_refuses_a_malformed_lake_url(url, says, tmp_path):
    from tests.conftest import free_port

    out = run(["chatlake", "serve", "--port", str(free_port())], tmp_path, DATALAKE_URL=url)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"error: DATALAKE_URL {url!r}") and says in out.stderr and out.stderr.count("\n") == 1


def test_the_webhook_answers_503_for_a_malformed_lake_url(secrets_env, monkeypatch):
    from app import app

    monkeypatch.setenv("DATALAKE_URL", "s3:/my-bucket")
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRETS["TELEGRAM_SECRET_TOKEN"]}
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # the app's logger does not propagate to pytest's (chalice sets it up so)
    logging.getLogger("chatlake.app").addHandler(handler)
    try:
        with Client(app, stage_name="local") as client:
            reply = client.http.post("/telegram", headers=headers, body=samples(1_764_000_000)["telegram"])
    finally:
        logging.getLogger("chatlake.app").removeHandler(handler)
    assert reply.status_code == 503 and "my-bucket" not in reply.body.decode()  # the reason goes to the log only
    assert [r.getMessage() for r in logged] == [
        "not configured: DATALAKE_URL 's3:/my-bucket' is not a valid s3:// URL: use s3://bucket[/prefix], "
        "file:///abs/path or a folder path"]
