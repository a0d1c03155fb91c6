"""The local stack's HTTP server (`make run`): chalice's own local server classes, with three changes that matter
once the stack is exposed through a tunnel.

- The body is read as the client framed it: `Transfer-Encoding: chunked` (proxies and tunnels chunk) as well as
  `Content-Length`. chalice's dev server reads only `Content-Length` bytes, so a chunked delivery reached the app
  empty while its real bytes were lost.
- A body over the webhook's limit is refused with `413` before it is read (by `Content-Length`, or as soon as the
  chunks pass the limit): a stranger must not make the server hold hundreds of MiB.
- The access log shows query parameter names, never their values (`hub.verify_token` is a secret).

Run as `python -m chatlake.local.server --host H --port P` (what `chatlake serve` starts).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

from chalicelib.webhook import MAX_BODY_BYTES
from chatlake import PROJECT_DIR

MAX_LINE = 1024  # a chunk-size line or a trailer line; real ones are a few bytes
MAX_TRAILER_LINES = 64
DRAIN_BYTES = 4 * 1024 * 1024  # after a refusal, read (and drop) at most this much of what the client still sends
DRAIN_SECONDS = 1.0
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_QUERY = re.compile(r"\?[^\s\"']*")


class BodyRefused(Exception):
    """A request refused before its body reached the app: nothing stored, nothing promised."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(rfile: BinaryIO, headers: Message, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body, de-chunked; None when there is none. Raises BodyRefused (413 over `limit`, before reading
    past it; 400 for broken framing; 501 for a transfer coding other than chunked)."""
    codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding") or [] for c in v.split(",")]
    codings = [c for c in codings if c]
    if codings:  # it wins over any Content-Length (RFC 9112 6.3)
        if codings != ["chunked"]:
            raise BodyRefused(501, f"Transfer-Encoding {', '.join(codings)} is not supported; send chunked or "
                                   "a Content-Length")
        return _read_chunked(rfile, limit) or None
    size = declared_length(headers, limit)
    body = rfile.read(size) if size else b""
    if size is not None and len(body) < size:
        raise BodyRefused(400, f"the body ended after {len(body)} of {size} bytes")
    return body or None


def declared_length(headers: Message, limit: int = MAX_BODY_BYTES) -> int | None:
    """`Content-Length` (None when absent); BodyRefused when it is not one integer (400) or over `limit` (413)."""
    lengths = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not lengths:
        return None
    value = lengths.pop()
    if lengths or not value.isascii() or not value.isdigit():
        raise BodyRefused(400, "Content-Length must be one non-negative integer")
    if len(value) > 18 or int(value) > limit:  # 18 digits: int() never meets a huge string
        raise BodyRefused(413, f"Content-Length is {value[:24]} bytes; the limit is {limit}")
    return int(value)


def _read_chunked(rfile: BinaryIO, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = _line(rfile, "a chunk size").split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BodyRefused(400, "malformed chunked body (a chunk size is not hexadecimal)")
        size = int(size_text, 16)
        if size == 0:
            break
        if total + size > limit:  # refused before reading this chunk
            raise BodyRefused(413, f"the chunked body is over {limit} bytes, the limit")
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise BodyRefused(400, "the chunked body ended inside a chunk")
        if _line(rfile, "the end of a chunk") not in (b"\r\n", b"\n"):
            raise BodyRefused(400, "malformed chunked body (a chunk is longer than its size)")
        parts.append(chunk)
        total += size
    for _ in range(MAX_TRAILER_LINES):
        if _line(rfile, "the trailer") in (b"\r\n", b"\n"):
            return b"".join(parts)
    raise BodyRefused(400, f"malformed chunked body (over {MAX_TRAILER_LINES} trailer lines)")


def _line(rfile: BinaryIO, what: str) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if not line.endswith(b"\n"):
        raise BodyRefused(400, f"malformed chunked body ({what} is too long or missing)")
    return line


def redact_query(text: str) -> str:
    """`/whatsapp?hub.mode=subscribe&hub.verify_token=s3cret` → `/whatsapp?hub.mode=…&hub.verify_token=…`."""

    def names_only(match: re.Match[str]) -> str:
        fields = re.split(r"[&;]", match.group(0)[1:])
        return "?" + "&".join(f.split("=", 1)[0] + "=…" if "=" in f else "…" for f in fields if f)

    return _QUERY.sub(names_only, text)


class LocalRequestHandler(ChaliceRequestHandler):
    """chalice's request handler, with a bounded, chunk-aware body reader and a redacted access log."""

    timeout = 60  # seconds of silence before a connection is dropped: a stalled body must not hold a thread

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue` (curl sends it for large bodies): refuse an oversized body before it is sent."""
        try:
            if not self.headers.get("Transfer-Encoding"):
                declared_length(self.headers)
        except BodyRefused as e:
            self._refuse(e)
            return False
        return super().handle_expect_100()

    def _generic_handle(self) -> None:
        try:
            self._body = read_body(self.rfile, self.headers)
        except BodyRefused as e:
            self._refuse(e)
            return
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # framing decided by us, not by a proxy before us: start afresh
        super()._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _parse_payload(self) -> tuple[dict[str, str], bytes | None]:
        return dict(self.headers), self._body

    def _refuse(self, error: BodyRefused) -> None:
        """Answer in the app's error shape, then drop the rest of the body unread (bounded) and close."""
        self.close_connection = True
        body = json.dumps({"ok": False, "error": error.message}).encode()
        try:
            self.send_response(error.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self._drain()
        except OSError:
            pass  # the client is gone: nothing was promised to it

    def _drain(self) -> None:
        """Read what the client is still sending, for a moment, so that closing does not reset the connection
        before it has read the answer. Dropped as read: memory stays bounded."""
        self.connection.settimeout(DRAIN_SECONDS)
        deadline, drained = time.monotonic() + DRAIN_SECONDS, 0
        while drained < DRAIN_BYTES and time.monotonic() < deadline:
            data = self.rfile.read1(65536)
            if not data:
                return
            drained += len(data)

    def log_message(self, format: str, *args: object) -> None:
        super().log_message("%s", redact_query(format % args))


def make_server(host: str, port: int, stage: str = "local", project_dir: Path = PROJECT_DIR) -> LocalDevServer:
    """What `chalice local` builds (the stage's config and app, routes validated), with our request handler."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes

    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # as the chalice CLI sets it
    config = CLIFactory(str(project_dir), environ=os.environ).create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)  # as chalice.local.create_local_server does
    app_obj.__class__ = CustomLocalChalice
    try:
        return LocalDevServer(app_obj, config, host, port, handler_cls=LocalRequestHandler)
    except OSError as e:  # the bind: a busy port, an address this machine does not have
        raise CannotListen(e) from e


class CannotListen(Exception):
    """The server could not bind its address; `main` says so in one line (exit 2)."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; exit 0 then."""
    parser = argparse.ArgumentParser(prog="python -m chatlake.local.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    # As `chalice local`: the app's log lines on stdout, as in Lambda.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    try:
        server = make_server(args.host, args.port, args.stage)
    except CannotListen as e:
        from chatlake.local.stack import cannot_listen

        print(f"error: {cannot_listen(e.__cause__, args.host, args.port)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a background job)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
