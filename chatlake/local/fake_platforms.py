"""Fake WhatsApp Graph API and Telegram Bot API media endpoints: real HTTP servers on 127.0.0.1 serving real bytes,
for the media capture tests and benchmark. Each file can be told to misbehave (throttle, expire its URL, redirect,
drip slowly, lie about its hash) so every path of capture runs against a socket, not a mock."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHUNK = 256 * 1024


@dataclass
class Generated:
    """`size` deterministic bytes made on the fly (a 100 MiB file without holding 100 MiB)."""

    size: int
    seed: int = 0

    def chunks(self) -> Any:
        block = hashlib.sha256(f"chatlake-fake-{self.seed}".encode()).digest() * (CHUNK // 32)
        left = self.size
        while left > 0:
            yield block[:min(left, CHUNK)]
            left -= CHUNK

    def sha256(self) -> str:
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        return h.hexdigest()


@dataclass
class FakeFile:
    """One media file and how the fake serves it."""

    body: bytes | Generated
    mime: str = "image/jpeg"
    lookup_failures: list[int] = field(default_factory=list)  # statuses answered to the first lookups (429, 500)
    expired_urls: int = 0  # how many download URLs handed out are already expired (404) when used
    redirect_to: str | None = None  # the download answers 302 to this location
    drip_seconds: float = 0.0  # pause before each chunk of the download
    stall_after: int | None = None  # send this many bytes, then hang (until the server stops)
    claimed_sha256: str | None = None  # the Graph API's sha256 (default: the true one)
    send_length: bool = True  # False: no Content-Length, and the APIs give no file_size (only streaming can tell)
    length_header: str | None = None  # a Content-Length that is no number, as a misbehaving server writes one

    @property
    def size(self) -> int:
        return self.body.size if isinstance(self.body, Generated) else len(self.body)

    def sha256(self) -> str:
        return self.body.sha256() if isinstance(self.body, Generated) else hashlib.sha256(self.body).hexdigest()

    def chunks(self) -> Any:
        if isinstance(self.body, Generated):
            yield from self.body.chunks()
        else:
            for i in range(0, len(self.body), CHUNK):
                yield self.body[i:i + CHUNK]


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread; `url` is its base URL."""

    def __init__(self) -> None:
        self.files: dict[str, FakeFile] = {}
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, file_id: str, file: FakeFile) -> FakeFile:
        self.files[file_id] = file
        return file

    def count(self, what: str) -> None:
        with self._lock:
            self.hits[what] += 1

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def reply_json(request: BaseHTTPRequestHandler, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def send_file(self, request: BaseHTTPRequestHandler, file: FakeFile, content_type: str) -> None:
        if file.redirect_to:
            request.send_response(302)
            request.send_header("Location", file.redirect_to)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        if file.length_header is not None:
            request.send_header("Content-Length", file.length_header)
        if file.send_length and file.length_header is None:
            request.send_header("Content-Length", str(file.size))
        else:
            request.send_header("Connection", "close")
            request.close_connection = True
        request.end_headers()
        sent = 0
        for chunk in file.chunks():
            if file.drip_seconds and self.stopping.wait(file.drip_seconds):
                return
            if file.stall_after is not None and sent + len(chunk) > file.stall_after:
                request.wfile.write(chunk[:file.stall_after - sent])
                request.wfile.flush()
                self.stopping.wait(60)
                return
            request.wfile.write(chunk)
            sent += len(chunk)


class FakeGraphApi(_Server):
    """`GET /{version}/{media_id}` (bearer) -> url, mime_type, sha256, file_size; `GET /download/...` -> bytes."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self._issued: Counter[str] = Counter()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path).path
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.count("unauthorized")
            return self.reply_json(request, 401, {"error": {"message": "Invalid OAuth access token.",
                                                            "type": "OAuthException", "code": 190}})
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0].startswith("v"):
            return self.lookup(request, parts[1])
        if len(parts) == 3 and parts[0] == "download":
            return self.download(request, parts[1], int(parts[2]))
        self.reply_json(request, 404, {"error": {"message": "Unknown path", "code": 803}})

    def lookup(self, request: BaseHTTPRequestHandler, media_id: str) -> None:
        self.count(f"lookup:{media_id}")
        file = self.files.get(media_id)
        if file is None:
            return self.reply_json(request, 404, {"error": {
                "message": f"Unsupported get request. Object with ID '{media_id}' does not exist",
                "type": "GraphMethodException", "code": 100, "error_subcode": 33}})
        if file.lookup_failures:
            status = file.lookup_failures.pop(0)
            code = 80007 if status == 429 else 2
            return self.reply_json(request, status, {"error": {"message": "Rate limit hit" if status == 429
                                                               else "Service temporarily unavailable", "code": code}})
        with self._lock:
            self._issued[media_id] += 1
            serial = self._issued[media_id]
        self.reply_json(request, 200, {"messaging_product": "whatsapp", "id": media_id,
                                       "url": f"{self.url}/download/{media_id}/{serial}", "mime_type": file.mime,
                                       "sha256": file.claimed_sha256 or file.sha256(),
                                       **({"file_size": file.size} if file.send_length else {})})

    def download(self, request: BaseHTTPRequestHandler, media_id: str, serial: int) -> None:
        self.count(f"download:{media_id}")
        file = self.files.get(media_id)
        if file is None or serial <= file.expired_urls:
            return self.reply_json(request, 404, {"error": {"message": "URL signature expired", "code": 100}})
        self.send_file(request, file, file.mime)


class FakeBotApi(_Server):
    """`GET /bot<token>/getFile?file_id=...` -> file_path; `GET /file/bot<token>/<file_path>` -> bytes."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path == f"/bot{self.token}/getFile":
            file_id = (parse_qs(parts.query).get("file_id") or [""])[0]
            self.count(f"getFile:{file_id}")
            file = self.files.get(file_id)
            if file is None:
                return self.reply_json(request, 400, {"ok": False, "error_code": 400,
                                                      "description": "Bad Request: invalid file_id"})
            if file.lookup_failures:
                status = file.lookup_failures.pop(0)
                return self.reply_json(request, status, {"ok": False, "error_code": status,
                                                         "description": "Too Many Requests: retry after 1",
                                                         "parameters": {"retry_after": 1}})
            if file.size > 20 * 1024 * 1024:
                return self.reply_json(request, 400, {"ok": False, "error_code": 400,
                                                      "description": "Bad Request: file is too big"})
            ext = {"image/jpeg": "jpg", "audio/ogg": "oga", "video/mp4": "mp4"}.get(file.mime, "bin")
            return self.reply_json(request, 200, {"ok": True, "result": {
                "file_id": file_id, "file_unique_id": file_id[-8:], "file_path": f"files/{file_id}.{ext}",
                **({"file_size": file.size} if file.send_length else {})}})
        prefix = f"/file/bot{self.token}/files/"
        if parts.path.startswith(prefix):
            file_id = parts.path[len(prefix):].rsplit(".", 1)[0]
            self.count(f"download:{file_id}")
            file = self.files.get(file_id)
            if file is not None:
                with self._lock:
                    expired = file.expired_urls > 0
                    file.expired_urls -= 1 if expired else 0
                if not expired:
                    return self.send_file(request, file, "application/octet-stream")
        self.reply_json(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll `predicate` until true or `timeout` seconds (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
