"""Fetching a chat's media bytes from the platforms, with the standard library's HTTP only (no pyarrow, no duckdb).

Two requests a file. WhatsApp: `GET {GRAPH_API_URL}/{version}/{media_id}` with the bearer token gives `url`,
`mime_type`, `sha256` and `file_size`; then `GET url` with the same bearer gives the bytes (the URL lives 5 minutes:
when it has expired by the second request, a fresh one is asked for once). Telegram: `getFile` gives `file_path`;
then `GET {TELEGRAM_API_URL}/file/bot<token>/<file_path>`.

The bytes are streamed in chunks into a temporary file, counted and hashed as they come, and never held whole: a
file over the size limit is stopped while streaming, and its partial bytes are deleted. Every URL is checked
before it is opened (`UrlPolicy`): HTTPS only, never a private, loopback or link-local address, redirects
included; the scheme and host of an explicitly configured `GRAPH_API_URL`/`TELEGRAM_API_URL` are allowed too.

Tokens travel only in the requests: errors name hosts and statuses, never URLs (a Telegram file URL holds the bot
token), and `redact` removes the token from any text that could still carry it.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import mimetypes
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from chalicelib.values import digits

MiB = 1024 * 1024
GRAPH_API_VERSION = "v21.0"
#: Graph API error codes that mean "slow down, then try again": 4 (app rate limit), 80007 (WhatsApp rate limit),
#: 130429 (throughput), 131048/131056 (spam/pair rate limits), 1 and 2 (unknown/temporary service errors).
GRAPH_RETRY_CODES = {1, 2, 4, 17, 32, 613, 80007, 130429, 131048, 131056}
#: Statuses of the second request that mean the signed URL has expired: ask the platform for a fresh one.
EXPIRED_URL_STATUSES = {401, 403, 404, 410}


class MediaError(Exception):
    """A fetch that gave no bytes. `kind` says what comes next: `retry` (timeout, 5xx, throttling: a later run
    tries again), `failed` (permanent: unknown id, 404), `too_large`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Limits:
    """How much one fetch may take: bytes, seconds per socket operation, seconds for a whole file, chunk size."""

    max_bytes: int = 100 * MiB
    timeout: float = 10.0
    deadline: float = 300.0
    chunk: int = 256 * 1024


@dataclass
class Fetched:
    """The bytes of one file, in a temporary file that the caller stores, then removes (`discard`)."""

    path: str
    size: int
    sha256: str
    mime_type: str | None

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def resolve(host: str) -> list[str]:
    """The addresses `host` resolves to (what a connection to it would use)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (socket.gaierror, UnicodeError) as e:
        raise MediaError("retry", f"cannot resolve {host}: {e}") from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs media may come from (SSRF): HTTPS to public addresses, and the explicitly configured bases."""

    trusted: tuple[str, ...] = ()  # base URLs whose scheme+host+port are allowed as they are
    resolver: Callable[[str], list[str]] = resolve

    def check(self, url: str) -> None:
        scheme, host, port = _origin(url)
        if (scheme, host, port) in {_origin(t) for t in self.trusted}:
            return
        if scheme != "https":
            raise MediaError("failed", f"refused to fetch media over {scheme or 'no scheme'}:// from {host or '?'}: "
                             "only HTTPS is allowed")
        if not host:
            raise MediaError("failed", "refused to fetch media from a URL without a host")
        for address in self.resolver(host):
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise MediaError("failed", f"refused to fetch media from {host}: it resolves to a private, loopback "
                                 f"or link-local address ({ip})")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the policy allows; the bearer token goes along only to the same origin."""

    max_redirections = 5

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        self.policy.check(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        token = req.unredirected_hdrs.get("Authorization")
        if new is not None and token and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", token)
        return new


Opener = Callable[[urllib.request.Request, float], Any]  # (request, timeout) -> response


def default_opener(policy: UrlPolicy) -> Opener:
    """urllib with checked redirects and no proxy from the environment (a proxy would see the tokens)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _CheckedRedirects(policy))
    return lambda request, timeout: opener.open(request, timeout=timeout)


@dataclass
class Http:
    """The HTTP side of capture: the URL policy, the opener (injected in tests), the limits, the spool folder."""

    policy: UrlPolicy = field(default_factory=UrlPolicy)
    limits: Limits = field(default_factory=Limits)
    opener: Opener | None = None
    spool: str = field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "chatlake-media"))
    secrets: tuple[str, ...] = ()  # removed from any error text

    def __post_init__(self) -> None:
        if self.opener is None:
            self.opener = default_opener(self.policy)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "<token>")
        return text

    def _open(self, url: str, headers: dict[str, str], what: str) -> Any:
        """Open `url` (checked first); an HTTP error status comes back as the response, not as an exception."""
        self.policy.check(url)
        request = urllib.request.Request(url, method="GET")
        for name, value in headers.items():
            request.add_unredirected_header(name, value)
        host = _origin(url)[1]
        try:
            return self.opener(request, self.limits.timeout)  # type: ignore[misc]
        except urllib.error.HTTPError as e:
            return e
        except MediaError:
            raise
        except TimeoutError:
            raise MediaError("retry", f"{what}: {host} did not answer within {self.limits.timeout:g} s") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, MediaError):
                raise reason from None
            if isinstance(reason, TimeoutError | socket.timeout):
                raise MediaError("retry", f"{what}: {host} did not answer within {self.limits.timeout:g} s") from None
            raise MediaError("retry", self.redact(f"{what}: cannot reach {host} ({reason})")) from None

    def json(self, url: str, headers: dict[str, str], what: str) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of a small API answer (at most 1 MiB read)."""
        with self._open(url, headers, what) as response:
            status = getattr(response, "status", None) or response.getcode()
            try:
                body = response.read(MiB)
            except TimeoutError:
                raise MediaError("retry", f"{what}: the answer did not arrive within {self.limits.timeout:g} s") \
                    from None
            except OSError as e:
                raise MediaError("retry", self.redact(f"{what}: the answer broke off ({e})")) from None
        try:
            return status, json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return status, None

    def download(self, url: str, headers: dict[str, str], what: str, expected_size: int | None = None) -> Fetched:
        """Stream `url` into a spool file, counting and hashing; stop past the size limit or the deadline.
        An HTTP error status raises MediaError with `status` set on it."""
        limits = self.limits
        if expected_size is not None and expected_size > limits.max_bytes:
            raise MediaError("too_large", f"{what}: {expected_size:,} bytes is over MEDIA_MAX_BYTES "
                             f"({limits.max_bytes:,})")
        started = time.monotonic()
        with self._open(url, headers, what) as response:
            status = getattr(response, "status", None) or response.getcode()
            if status != 200:
                error = _status_error(status, what, _origin(url)[1])
                error.status = status  # type: ignore[attr-defined]
                raise error
            declared = digits(response.headers.get("Content-Length"), 18)  # the sender's word, checked below
            if declared is not None and declared > limits.max_bytes:
                raise MediaError("too_large", f"{what}: {declared:,} bytes is over MEDIA_MAX_BYTES "
                                 f"({limits.max_bytes:,})")
            mime = response.headers.get_content_type() if response.headers.get("Content-Type") else None
            path, size, sha256 = spool_stream(getattr(response, "read1", response.read), limits, self.spool, what,
                                              f"{what}: {_origin(url)[1]} stopped sending for {limits.timeout:g} s",
                                              started, self.redact)
        if declared is not None and size != declared:
            os.unlink(path)
            raise MediaError("retry", f"{what}: got {size:,} of {declared:,} bytes")
        return Fetched(path, size, sha256, None if mime == "application/octet-stream" else mime)


def spool_stream(read: Callable[[int], bytes], limits: Limits, spool: str, what: str, stalled: str,
                 started: float | None = None, redact: Callable[[str], str] = str) -> tuple[str, int, str]:
    """Stream `read(n)` chunks into a new spool file, counting and hashing as they come: (path, size, sha256 hex).
    Stops past MEDIA_MAX_BYTES or the deadline; a read that times out is `stalled`; on any failure the partial
    file is removed. Every fetch path (HTTP, End User Messaging Social's staged S3 copy) spools through here."""
    started = time.monotonic() if started is None else started
    os.makedirs(spool, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="fetch-", suffix=".part", dir=spool)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := read(limits.chunk):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise MediaError("too_large", f"{what}: more than MEDIA_MAX_BYTES "
                                     f"({limits.max_bytes:,} bytes); stopped while streaming")
                if time.monotonic() - started > limits.deadline:
                    raise MediaError("retry", f"{what}: not complete within {limits.deadline:g} s")
                digest.update(chunk)
                out.write(chunk)
    except TimeoutError:
        os.unlink(path)
        raise MediaError("retry", stalled) from None
    except MediaError:
        os.unlink(path)
        raise
    except (OSError, ValueError) as e:  # a connection reset, an incomplete read, a full disk
        os.unlink(path)
        raise MediaError("retry", redact(f"{what}: the download broke off ({e})")) from None
    return path, size, digest.hexdigest()


def _status_error(status: int, what: str, host: str, detail: str = "") -> MediaError:
    """The next step for an HTTP error status: throttling and server errors are retried, the rest is permanent."""
    text = f"{what}: {host} answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500 or status == 408:
        return MediaError("retry", text)
    return MediaError("failed", text)


def clean_message(value: Any, limit: int = 300) -> str:
    """A platform's error message as one short line (it is shown in `status`, stored in the media table)."""
    text = " ".join(str(value).split()) if value is not None else ""
    return text[:limit]


# --- the platforms -----------------------------------------------------------------------------------------------


@dataclass
class WhatsAppMedia:
    """WhatsApp Cloud API media: the Graph API's media node, then its short-lived URL, both with the bearer."""

    http: Http
    token: str
    base_url: str = "https://graph.facebook.com"
    version: str = GRAPH_API_VERSION
    source: str = "whatsapp"

    def __post_init__(self) -> None:
        self.http.secrets = (*self.http.secrets, self.token)

    def _describe(self, media_id: str) -> dict[str, Any]:
        url = f"{self.base_url}/{self.version}/{quote(media_id, safe='')}"
        status, body = self.http.json(url, self._auth(), "Graph API media lookup")
        error = body.get("error") if isinstance(body, dict) else None
        if status == 200 and isinstance(body, dict) and isinstance(body.get("url"), str):
            return body
        message = clean_message(error.get("message")) if isinstance(error, dict) else ""
        code = error.get("code") if isinstance(error, dict) else None
        detail = f"{message} (code {code})" if code is not None else message
        if code in GRAPH_RETRY_CODES:
            raise MediaError("retry", f"Graph API throttled or unavailable: {detail}")
        if code == 190:  # the token: expired, revoked or wrong. A later run retries once it is replaced.
            raise MediaError("retry", f"WHATSAPP_ACCESS_TOKEN was refused: {detail}")
        raise _status_error(status if status != 200 else 502, "Graph API media lookup",
                            _origin(url)[1], detail or "no media URL in the answer")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def fetch(self, media_id: str) -> Fetched:
        for attempt in (1, 2):
            info = self._describe(media_id)
            size = info.get("file_size")
            size = size if type(size) is int and size >= 0 else digits(size, 18)
            try:
                fetched = self.http.download(info["url"], self._auth(), "WhatsApp media download", size)
            except MediaError as e:
                if getattr(e, "status", None) in EXPIRED_URL_STATUSES and attempt == 1:
                    continue  # the 5-minute URL expired between the two requests: ask for a fresh one
                raise
            expected = str(info.get("sha256") or "").lower()
            if expected and not _same_digest(expected, fetched.sha256):
                fetched.discard()
                raise MediaError("retry", f"the bytes' sha256 {fetched.sha256} is not the {expected} the Graph API "
                                 "gave: not stored")
            if size is not None and fetched.size != size:
                fetched.discard()
                raise MediaError("retry", f"got {fetched.size:,} bytes, the Graph API said {size:,}: not stored")
            fetched.mime_type = clean_mime(info.get("mime_type")) or fetched.mime_type
            return fetched
        raise AssertionError("unreachable")


def _same_digest(expected: str, actual_hex: str) -> bool:
    """The Graph API's sha256 is hex; accept its base64 form too."""
    if expected == actual_hex:
        return True
    import base64
    import binascii

    try:
        return base64.b64decode(expected + "=" * (-len(expected) % 4)).hex() == actual_hex
    except (binascii.Error, ValueError):
        return False


@dataclass
class TelegramMedia:
    """Telegram Bot API files: `getFile`, then the file URL (which holds the bot token: never shown)."""

    http: Http
    token: str
    base_url: str = "https://api.telegram.org"
    source: str = "telegram"

    def __post_init__(self) -> None:
        self.http.secrets = (*self.http.secrets, self.token)

    def _file_path(self, file_id: str) -> tuple[str, int | None]:
        url = f"{self.base_url}/bot{self.token}/getFile?file_id={quote(file_id, safe='')}"
        status, body = self.http.json(url, {}, "Bot API getFile")
        result = body.get("result") if isinstance(body, dict) else None
        if status == 200 and isinstance(result, dict) and isinstance(result.get("file_path"), str):
            size = result.get("file_size")
            return result["file_path"], size if isinstance(size, int) else None
        description = clean_message(self.http.redact(str(body.get("description")))) \
            if isinstance(body, dict) and body.get("description") else ""
        if "file is too big" in description.lower():
            raise MediaError("too_large", f"Bot API getFile: {description} (the Bot API serves files up to 20 MB)")
        if status == 200:
            raise MediaError("retry", "Bot API getFile: no file_path in the answer")
        raise _status_error(status, "Bot API getFile", _origin(url)[1], description)

    def fetch(self, file_id: str) -> Fetched:
        for attempt in (1, 2):
            path, size = self._file_path(file_id)
            url = f"{self.base_url}/file/bot{self.token}/{quote(path, safe='/')}"
            try:
                fetched = self.http.download(url, {}, "Telegram file download", size)
            except MediaError as e:
                if getattr(e, "status", None) in EXPIRED_URL_STATUSES and attempt == 1:
                    continue  # the file link expired: getFile again
                raise
            if fetched.mime_type is None:
                fetched.mime_type = _guess_from_path(path)
            return fetched
        raise AssertionError("unreachable")


# --- file name extensions from MIME types --------------------------------------------------------------------------

#: The chat platforms' usual types first (fixed, so the key of a file never depends on the machine's mime.types).
EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif", "image/heic": ".heic",
    "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac",
    "audio/amr": ".amr", "video/mp4": ".mp4", "video/3gpp": ".3gp", "video/webm": ".webm",
    "video/quicktime": ".mov", "application/pdf": ".pdf", "application/x-tgsticker": ".tgs",
    "application/zip": ".zip", "text/plain": ".txt", "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}
_BUILTIN = mimetypes.MimeTypes()  # Python's own table: not the machine's /etc/mime.types


def clean_mime(value: Any) -> str | None:
    """`audio/ogg; codecs=opus` -> `audio/ogg`; anything that is not type/subtype -> None."""
    if not isinstance(value, str):
        return None
    mime = value.split(";")[0].strip().lower()
    major, slash, minor = mime.partition("/")
    ok = slash and major and minor and all(c.isalnum() or c in "+-.!#$&^_" for c in major + minor)
    return mime if ok else None


def extension(mime: str | None) -> str:
    """The file name extension for a MIME type (`.bin` when unknown)."""
    mime = clean_mime(mime)
    if mime is None:
        return ".bin"
    return EXTENSIONS.get(mime) or _BUILTIN.guess_extension(mime) or ".bin"


def _guess_from_path(path: str) -> str | None:
    return EXTENSIONS_BY_SUFFIX.get(os.path.splitext(path)[1].lower())


EXTENSIONS_BY_SUFFIX = {ext: mime for mime, ext in EXTENSIONS.items()} | {".jpeg": "image/jpeg", ".oga": "audio/ogg"}
