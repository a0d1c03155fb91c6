"""One storage interface, two backends: a folder on disk and S3, chosen from `DATALAKE_URL`.

Keys are `/`-separated paths relative to the lake root. Both backends list keys in lexicographic
order, so everything built on `list` is deterministic.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from chalicelib.settings import ConfigError

T = TypeVar("T")
R = TypeVar("R")


class StorageError(Exception):
    """The lake could not be read or written (disk, permissions, network, S3)."""


class NotFound(StorageError):
    """No object at that key."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float  # seconds since the epoch: cheap to make for 100k objects, and to sort

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime, UTC)


class Storage(Protocol):
    url: str
    parallel_reads: int  # how many concurrent reads pay off (network latency) or hurt (local disk, GIL)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        """Store `data` at `key`; with overwrite=False keep an existing object. True if written."""

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, in key order."""

    def keys(self, prefix: str, *, after: str = "", before: str = "") -> Iterator[str]:
        """The same keys as `list`, without size and time (no stat per file: the ETL lists 100k of them).
        `after`/`before` (whole keys, both excluded; "" for no bound) list one range of a big folder: S3 starts
        there (StartAfter) and stops at `before`, so a worker pays only its share of the pages."""

    def delete(self, key: str) -> None: ...


# Open the temporary file for writing, created or truncated (a leftover of a crashed writer is reused).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 16

#: A folder lake notes the name of each object it stores under this prefix (the raw layer) in the folder's
#: arrivals journal, in the order they arrived: what an intraday run reads instead of listing the day.
JOURNALED = "raw/source="
ARRIVALS = "_arrivals"  # not an object: `keys` skips it, as it skips temp files


def _check_key(key: str) -> str:
    if key and key[0] not in "/." and key[-1] != "/" and "//" not in key and "/." not in key:
        return key  # the common case, without splitting: no empty part, and no part starting with a dot
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class FolderStorage:
    """A lake in a local folder. Writes are atomic: a temp file in the same folder, then a rename."""

    parallel_reads = 1

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()
        self._prefix = str(self.root) + os.sep
        # the arrivals journals this process appends to, kept open (an open and a close cost more than the write)
        self._journals: dict[str, int] = {}
        self._journal_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._journals)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        # Plain strings, not Path objects: this runs once per delivery on the webhook path.
        path = self._prefix + _check_key(key)
        journaled = key.startswith(JOURNALED)
        if not overwrite and os.path.exists(path):
            if journaled:  # a retry: noted again, in case the first copy's writer died before its note
                self._note(*path.rpartition(os.sep)[::2])
            return False  # two concurrent first copies both get here: they hold the same bytes, either may win
        folder, _, name = path.rpartition(os.sep)
        # A temporary name of this process and thread (each writes one file at a time), next to the target.
        tmp = f"{folder}{os.sep}.{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            try:
                fd = os.open(tmp, _CREATE, 0o644)
            except FileNotFoundError:  # the first write into this folder
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, _CREATE, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
        if journaled:
            self._note(folder, name)
        return True

    def _note(self, folder: str, name: str) -> None:
        """Append the object's name to its folder's arrivals journal (after the object is in place). One short
        O_APPEND write: concurrent writers' lines do not interleave. Best effort: a note that is lost shows as
        a folder changed after its journal (`arrivals` then answers None and the reader lists the folder). About
        1 us a delivery: the journal stays open. A journal removed by another process (`prune`) and written
        into afterwards only makes the folder's journal not answer (the reader lists); this process's own
        deletes close it first (`_drop_journal_if_alone`)."""
        line = name.encode() + b"\n"
        with self._journal_lock, contextlib.suppress(OSError):
            fd = self._journals.get(folder)
            if fd is None:
                if len(self._journals) >= _OPEN_JOURNALS:  # a long-running server moves on to new days
                    _close_all(self._journals)
                fd = self._journals[folder] = os.open(folder + os.sep + ARRIVALS, _APPEND, 0o644)
            os.write(fd, line)

    def arrival_mark(self, prefix: str) -> tuple[int, int]:
        """Where the arrivals journal of the folder `prefix` ends now, as (inode, size); (0, 0) without one. Taken
        before a listing, it says which journal lines that listing already covers."""
        try:
            st = os.stat(self._prefix + prefix + ARRIVALS)
        except FileNotFoundError:
            return 0, 0
        except OSError as e:
            raise StorageError(f"cannot read the arrivals of {prefix}: {e.strerror or e}") from e
        return st.st_ino, st.st_size

    def arrivals(self, prefix: str, mark: tuple[int, int]) -> tuple[list[str], tuple[int, int]] | None:
        """The names stored in the folder `prefix` (by `put`, under `JOURNALED`) since `mark`,
        in arrival order (a name may repeat), and the mark to resume from: a day's new deliveries without
        listing its 100k names. None when the journal cannot answer for the folder: the folder changed after
        the journal's last line (an object placed by other means, a note lost, a delete, a write under way),
        it has objects but no journal, or the journal is not the one `mark` is in. Then the caller lists."""
        folder = self._prefix + prefix.rstrip("/")
        try:
            changed = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return [], mark  # no folder: nothing stored yet
        except OSError as e:
            raise StorageError(f"cannot read {folder}: {e.strerror or e}") from e
        try:
            fd = os.open(folder + os.sep + ARRIVALS, _READ)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot read the arrivals of {prefix}: {e.strerror or e}") from e
        try:
            st = os.fstat(fd)
            inode, offset = mark
            if changed > st.st_mtime_ns or (inode and inode != st.st_ino) or st.st_size < offset:
                return None
            chunks, at = [], offset
            while chunk := os.pread(fd, max(_CHUNK, st.st_size - at), at):
                chunks.append(chunk)
                at += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # a line being appended right now is the next reader's
        return data[:end].decode().split(), (st.st_ino, offset + end)

    def get(self, key: str) -> bytes:
        path = self._prefix + _check_key(key)  # a plain string: this runs once per delivery in the ETL
        # os.open/os.read, not open(): a buffered file object costs an fstat, an isatty and a seek per file, as
        # much as the read itself for a 1 kB delivery (the ETL reads 100k of them)
        try:
            fd = os.open(path, _READ)
            try:
                chunks = []
                while chunk := os.read(fd, _CHUNK):
                    chunks.append(chunk)
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as e:
            raise StorageError(f"cannot read {path}: {e.strerror or e}") from e
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def keys(self, prefix: str, *, after: str = "", before: str = "") -> Iterator[str]:
        folder, _, start = prefix.rpartition("/")
        base = self._prefix + folder if folder else str(self.root)
        try:
            with os.scandir(base) as it:  # the entries' types come with the names (no stat)
                names, folders = [], set()
                for e in it:
                    name = e.name
                    if name.startswith(start) and name[0] != "." and name != ARRIVALS:  # no temp file, no journal
                        names.append(name)
                        if e.is_dir(follow_symlinks=False):
                            folders.add(name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise StorageError(f"cannot list {base}: {e.strerror or e}") from e
        here = f"{folder}/" if folder else ""
        if not folders:  # a folder of objects (a day's 100k raw deliveries): no per-name branch
            if after or before:  # a range: only its names are sorted and joined
                names = [n for n in names if (not after or here + n > after) and (not before or here + n < before)]
            names.sort()
            yield from [here + name for name in names]
            return
        names.sort()
        for name in names:
            if name in folders:
                yield from self.keys(here + name + "/", after=after, before=before)
            elif (not after or here + name > after) and (not before or here + name < before):
                yield here + name

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for key in self.keys(prefix):
            try:
                st = os.stat(self._prefix + key)
            except FileNotFoundError:
                continue  # deleted since it was listed
            yield ObjectInfo(key, st.st_size, st.st_mtime)

    def mtimes(self, keys: list[str]) -> dict[str, float]:
        """Modification times of a few objects (a stat each): a folder's `list` stats every file, where an S3
        listing carries the times for free; an intraday run wants the times of its new deliveries only."""
        out = {}
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                out[key] = os.stat(self._prefix + _check_key(key)).st_mtime
        return out

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._prefix + _check_key(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot delete {key}: {e.strerror or e}") from e
        if key.startswith(JOURNALED):
            self._drop_journal_if_alone(self._prefix + key.rpartition("/")[0])

    def _drop_journal_if_alone(self, folder: str) -> None:
        """A raw folder emptied (`prune`, an erasure) keeps no arrivals journal: its lines are the names of
        deliveries that are gone. One directory read of at most two entries per delete; a put racing it only
        loses its note, which makes the journal not answer (the reader lists)."""
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            left = [e.name for _, e in zip(range(2), entries, strict=False)]
            if left == [ARRIVALS]:
                with self._journal_lock:
                    if (fd := self._journals.pop(folder, None)) is not None:
                        os.close(fd)
                os.unlink(folder + os.sep + ARRIVALS)


_OPEN_JOURNALS = 16  # arrivals journals kept open per lake: a day's two or three sources, and late days


def _close_all(journals: dict[str, int]) -> None:
    for fd in journals.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    journals.clear()


class S3Storage:
    """A lake under `s3://bucket/prefix`. The boto3 client is injected, or built on first use."""

    parallel_reads = 32

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client()
        return self._client

    def _errors(self) -> tuple[type[BaseException], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        extra = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + _check_key(key), Body=data, **extra)
            return True
        except self._errors() as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if not overwrite and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False  # already stored (or being stored by a concurrent retry of the same body)
            raise StorageError(f"cannot write s3://{self.bucket}/{self.prefix}{key}: {e}") from e

    def get(self, key: str) -> bytes:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _check_key(key))
            return reply["Body"].read()
        except self._errors() as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            raise StorageError(f"cannot read s3://{self.bucket}/{self.prefix}{key}: {e}") from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        skip = len(self.prefix)
        for obj in self._objects(prefix, "", ""):
            yield ObjectInfo(obj["Key"][skip:], obj["Size"], obj["LastModified"].timestamp())

    def keys(self, prefix: str, *, after: str = "", before: str = "") -> Iterator[str]:
        skip = len(self.prefix)
        return (obj["Key"][skip:] for obj in self._objects(prefix, after, before))

    def _objects(self, prefix: str, after: str, before: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2's entries under `prefix`, from after `after` (StartAfter) until `before`: the pages
        past `before` are never asked for."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": self.prefix + after} if after else {}
        stop = self.prefix + before if before else None
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **extra):
                for obj in page.get("Contents", ()):
                    if stop is not None and obj["Key"] >= stop:
                        return
                    yield obj
        except self._errors() as e:
            raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {e}") from e

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _check_key(key))
        except self._errors() as e:
            raise StorageError(f"cannot delete s3://{self.bucket}/{self.prefix}{key}: {e}") from e


def make_s3_client() -> Any:
    """An S3 client with bounded, adaptive retries: throttling (SlowDown, 503) backs off and retries, at most 9
    attempts a request and within botocore's retry quota; beyond that the call fails cleanly (a webhook answers
    503 so the platform retries; the ETL day fails and keeps its previous output, to be re-run)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", config=Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)
    )


#: What a DATALAKE_URL may be, for the messages that refuse one.
LAKE_URL_FORMS = "s3://bucket[/prefix], file:///abs/path or a folder path"


class LakeUrlError(ConfigError):
    """DATALAKE_URL is not a lake this code can open; the one-line message says what to write instead."""


def open_storage(url: str, s3_client: Any = None) -> Storage:
    """The backend for a `DATALAKE_URL`: `s3://bucket[/prefix]`, `file:///abs/path` or a plain path. Anything else
    is a LakeUrlError (a ConfigError) rather than a folder with an odd name: `s3:/x` or `~/lake` would otherwise
    become a folder `./s3:/x` or `./~/lake` that the webhooks fill quietly."""
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if not parsed.netloc:
            raise LakeUrlError(f"DATALAKE_URL {url!r} has no bucket: use s3://bucket[/prefix]")
        return S3Storage(parsed.netloc, parsed.path, client=s3_client)
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise LakeUrlError(f"DATALAKE_URL {url!r}: a file:// URL must be absolute (file:///path)")
        return FolderStorage(parsed.path)
    if url.startswith("~"):
        instead = "an absolute path or $HOME" + url[1:] if url[1:2] in ("", "/") else "an absolute path"
        raise LakeUrlError(f"DATALAKE_URL {url!r}: ~ is not expanded here: use {instead}")
    if m := _SCHEME.match(url):
        scheme = (m.group(1) or m.group(2)).lower()
        what = (f"is not a valid {scheme}:// URL" if scheme in ("s3", "file")
                else f"uses {scheme}://, which is not supported")
        raise LakeUrlError(f"DATALAKE_URL {url!r} {what}: use {LAKE_URL_FORMS}")
    return FolderStorage(url)


# A URL scheme, or what a typo left of one (`s3:/x`, `s3:bucket`, `gs://x`); `a:b` stays a folder name.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?=/)|(s3|file):", re.IGNORECASE)


def require_existing(storage: Storage) -> None:
    """For commands that only read the lake: a folder lake must exist. It is created by its first write (the
    webhooks, `chatlake etl`/`backfill`); before that, reading it would show an empty lake, which hides a
    DATALAKE_URL that points at the wrong place. S3 is not checked here: that needs the network."""
    if isinstance(storage, FolderStorage) and not storage.root.is_dir():
        what = "is not a folder" if storage.root.exists() else "does not exist"
        raise LakeUrlError(f"the data lake {storage.root} {what}: set DATALAKE_URL to your lake, or let the "
                           "webhooks (make run) or chatlake etl create it")


def side_by_side(storage: Storage, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[fn(item) for item in items]`, with up to `storage.parallel_reads` calls at once: independent requests
    (listings of several prefixes, a few small GETs) wait side by side on S3; a folder runs them in order."""
    from concurrent.futures import ThreadPoolExecutor  # not on the webhook path, which imports this module

    items = list(items)
    workers = min(storage.parallel_reads, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="lake") as pool:
        return list(pool.map(fn, items))
