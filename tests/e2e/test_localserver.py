"""The local stack's HTTP server over real sockets on 127.0.0.1: chunked bodies, bounded reads, a redacted access
log, and a first-delivery hint whose commands really work."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib import layout
from chalicelib.webhook import MAX_BODY_BYTES, whatsapp_signature
from chatlake.local import stack, synthetic
from chatlake.local.demo import healthy
from chatlake.local.stack import stop
from tests.conftest import PROJECT_DIR, SECRETS, free_port
from tests.e2e.test_server import local_stack

SAMPLES = synthetic.samples(1_795_000_000)
TG_AUTH = {"X-Telegram-Bot-Api-Secret-Token": SECRETS["TELEGRAM_SECRET_TOKEN"]}


class Server:
    """`python -m chatlake.local.server` (what `make run` starts) on a free port, its output in a file."""

    def __init__(self, lake_dir: Path, log_path: Path) -> None:
        self.lake_dir, self.log_path = lake_dir, log_path
        self.port = free_port()
        env = {**os.environ, **SECRETS, "DATALAKE_URL": str(lake_dir)}
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatlake.local.server", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not healthy(f"http://127.0.0.1:{self.port}"):
            assert self.proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    def stored(self) -> list[Path]:
        return sorted(p for p in self.lake_dir.rglob("*") if p.is_file())

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("localserver")
    s = Server(root / "lake", root / "server.log")
    try:
        yield s
    finally:
        stop(s.proc)


def raw_request(port: int, head: bytes, body_parts: Iterator[bytes] | list[bytes] = (), timeout: float = 10
                ) -> tuple[int, bytes, float]:
    """Send a request as raw bytes (whatever framing), then read the whole answer; (status, answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            for part in body_parts:
                sock.sendall(part)
        except OSError:
            pass  # the server refused and closed early: its answer is still there to read
        answer = b""
        while not answer.endswith(b"}") or b"\r\n\r\n" not in answer:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split()[1]), answer, time.monotonic() - started


def chunked(body: bytes, sizes: list[int]) -> list[bytes]:
    """`body` as chunks of the given sizes (cycled), with an extension on one chunk and a trailer at the end."""
    parts, i, n = [], 0, 0
    while i < len(body):
        size = sizes[n % len(sizes)]
        ext = b";name=value" if n == 1 else b""
        parts.append(b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), ext, body[i:i + size]))
        i, n = i + size, n + 1
    return [*parts, b"0\r\nX-Trailer: yes\r\n\r\n"]


def head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- item: chunked bodies are stored with their exact bytes ---------------------------------------------------------


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_a_chunked_delivery_through_make_runs_stack_is_stored_byte_for_byte(tmp_path: Path, source: str):
    """What a tunnel or proxy sends: `Transfer-Encoding: chunked`, no Content-Length (http.client frames it)."""
    body = SAMPLES[source]
    auth = TG_AUTH if source == "telegram" else {
        "X-Hub-Signature-256": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body)}
    with local_stack(tmp_path / "lake") as (base, _):
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=10)
        conn.request("POST", f"/{source}", body=iter([body[:7], body[7:100], body[100:]]), encode_chunked=True,
                     headers={"Content-Type": "application/json", **auth})
        reply = conn.getresponse()
        answer = json.loads(reply.read())
        conn.close()
    assert reply.status == 200, answer
    assert (tmp_path / "lake" / answer["key"]).read_bytes() == body
    assert answer["key"].endswith(layout.digest(body) + ".json")


def test_odd_chunk_sizes_extensions_and_trailers_keep_the_exact_bytes(server: Server):
    body = SAMPLES["telegram"].replace(b'"text":"', b'"text":"odd chunks ')
    status, answer, _ = raw_request(server.port, head("/telegram", {
        "Content-Type": "application/json", "Transfer-Encoding": "chunked", **TG_AUTH}), chunked(body, [1, 7, 300, 2]))
    assert status == 200, answer
    key = json.loads(answer.split(b"\r\n\r\n", 1)[1])["key"]
    assert (server.lake_dir / key).read_bytes() == body


@pytest.mark.parametrize(("name", "parts", "status"), [
    ("size not hex", [b"zz\r\n{}\r\n0\r\n\r\n"], 400),
    ("chunk longer than its size", [b"2\r\n{}}\r\n0\r\n\r\n"], 400),
    ("size line too long", [b"1" + b" " * 2000 + b"\r\n"], 400),
])
def test_a_malformed_chunked_body_is_refused_and_nothing_stored(server: Server, name: str, parts: list[bytes],
                                                                status: int):
    before = server.stored()
    got, answer, _ = raw_request(server.port, head("/telegram", {"Transfer-Encoding": "chunked", **TG_AUTH}), parts)
    assert got == status, answer
    assert b"chunked" in answer
    assert server.stored() == before


def test_a_transfer_coding_other_than_chunked_is_refused(server: Server):
    before = server.stored()
    status, answer, _ = raw_request(server.port, head("/telegram", {"Transfer-Encoding": "gzip, chunked", **TG_AUTH}),
                                    [b"2\r\n{}\r\n0\r\n\r\n"])
    assert status == 501 and b"gzip" in answer
    assert server.stored() == before


# --- item: oversized bodies are refused before they are read --------------------------------------------------------


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_a_huge_content_length_is_413_before_the_body_is_read(server: Server, source: str):
    """Claim 300 MiB with a wrong credential, send 256 KiB: the 413 comes at once, not after 300 MiB."""
    before, rss = server.stored(), server.rss_kib()
    claimed = 300 * 1024 * 1024
    auth = {"X-Telegram-Bot-Api-Secret-Token": "wrong"} if source == "telegram" else {
        "X-Hub-Signature-256": "sha256=" + "0" * 64}
    status, answer, seconds = raw_request(
        server.port, head(f"/{source}", {"Content-Length": str(claimed), **auth}), [b"x" * 65536] * 4, timeout=5)
    assert status == 413, answer
    assert f"the limit is {MAX_BODY_BYTES}".encode() in answer
    assert seconds < 3
    assert server.stored() == before
    assert server.rss_kib() - rss < 16 * 1024


def test_expect_100_continue_with_a_huge_length_is_413_without_continue(server: Server):
    status, answer, _ = raw_request(server.port, head("/telegram", {
        "Content-Length": str(MAX_BODY_BYTES + 1), "Expect": "100-continue", **TG_AUTH}), timeout=5)
    assert status == 413 and b"100 Continue" not in answer


@pytest.mark.parametrize("length", ["12abc", "-1", "9" * 5000])
def test_a_content_length_that_is_not_a_small_integer_is_refused(server: Server, length: str):
    status, _, _ = raw_request(server.port, head("/telegram", {"Content-Length": length, **TG_AUTH}), [b"{}"])
    assert status in (400, 413)


def test_a_chunked_body_past_the_limit_is_413_and_nothing_stored(server: Server):
    """11 MiB streamed in 64 KiB chunks with a valid token: refused once past 10 MiB, unread beyond that."""
    before, rss = server.stored(), server.rss_kib()
    piece = b"x" * 65536
    parts = [b'10\r\n{"update_id":1,\r\n', *(b"10000\r\n" + piece + b"\r\n" for _ in range(176)), b"0\r\n\r\n"]
    status, answer, seconds = raw_request(
        server.port, head("/telegram", {"Transfer-Encoding": "chunked", **TG_AUTH}), parts, timeout=8)
    assert status == 413, answer
    assert seconds < 6
    assert server.stored() == before
    assert server.rss_kib() - rss < 48 * 1024  # at most the 10 MiB kept while reading, and transient copies


def test_a_chunked_body_of_exactly_the_limit_is_stored(server: Server):
    body = b'{"update_id":1,"p":"' + b"x" * (MAX_BODY_BYTES - 22) + b'"}'
    assert len(body) == MAX_BODY_BYTES
    status, answer, _ = raw_request(server.port, head("/telegram", {"Transfer-Encoding": "chunked", **TG_AUTH}),
                                    chunked(body, [1024 * 1024]), timeout=20)
    assert status == 200, answer[:300]
    key = json.loads(answer.split(b"\r\n\r\n", 1)[1])["key"]
    assert (server.lake_dir / key).read_bytes() == body


# --- item: no secret in the access log, no signature printed --------------------------------------------------------


def test_the_access_log_shows_no_query_value(server: Server):
    token, challenge = SECRETS["WHATSAPP_VERIFY_TOKEN"], "challenge-4711"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge={challenge}")
    reply = conn.getresponse()
    assert reply.status == 200 and reply.read() == challenge.encode()
    conn.request("GET", f"/whatsapp?hub.mode=subscribe&hub.verify_token={token}x&hub.challenge={challenge}")
    assert conn.getresponse().status == 403
    conn.close()
    # a malformed request line is logged as an error, with the line in it
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /whatsapp?hub.verify_token={token} HTTP/1.1 junk\r\n\r\n".encode())
        assert b"400" in sock.recv(65536)
    deadline = time.monotonic() + 5
    while "hub.verify_token=…" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    printed = server.output()
    assert "GET /whatsapp?hub.mode=…&hub.verify_token=…&hub.challenge=… HTTP/1.1" in printed
    assert token not in printed and challenge not in printed
    for secret in SECRETS.values():
        assert secret not in printed


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl") and shutil.which("bash")),
                    reason="the printed commands need bash, openssl and curl")
def test_the_printed_hint_signs_with_the_secret_in_dotenv_and_the_server_accepts_it(server: Server, tmp_path: Path):
    """The hint is a shell script: run as printed, in a folder whose .env holds the secrets (not the
    environment), both deliveries are accepted. It holds no secret and no valid signature itself."""
    hint = stack.first_delivery_hint(f"http://127.0.0.1:{server.port}")
    for secret in SECRETS.values():
        assert secret not in hint
    assert not re.search(r"sha256=[0-9a-fA-F]{64}", hint)  # a command that computes it, not a signature
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    out = subprocess.run(["bash", "-c", hint], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    replies = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert [r["ok"] for r in replies] == [True, True], replies
    assert replies[0]["key"].startswith("raw/source=whatsapp/") and replies[1]["key"].startswith("raw/source=telegram/")
    assert all((server.lake_dir / r["key"]).is_file() for r in replies)
    # with a wrong secret in .env, the same command is refused: the signature really comes from .env
    (tmp_path / ".env").write_text("WHATSAPP_APP_SECRET=not-the-secret\nTELEGRAM_SECRET_TOKEN=nope\n")
    out = subprocess.run(["bash", "-c", hint], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert [json.loads(line)["ok"] for line in out.stdout.splitlines() if line.strip()] == [False, False]
