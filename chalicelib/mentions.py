"""Which raw deliveries can mention which identifiers: a per-day index the ETL writes as it reads the day, so that
`chatlake forget` reads only the raw objects that can hold a person instead of every object of every day.

One entry per raw key: the distinct runs of at least `MIN_DIGITS` digits in its bytes, space-separated. Every
identifier `forget` accepts is such a run in the bytes (a phone number, a wa_id, a Telegram user or chat id, a
BSUID's digits), and the run is maximal wherever `forget`'s exact pattern matches. A body that escapes a digit
(`\\u003X`) could hide one, so its entry is `*` (always read). In `PII_MODE=hash` each run is stored as a keyed
hash (the lake must not hold identifiers in clear), never as the `pii` hash the tables use. The index is a superset:
`forget` still tests each candidate's bytes with its exact pattern, and keys the index does not list (raw data
that arrived after the day's last full run, a fan-out merge) are read as before.

The file lives under its own prefix (`etl/mentions/dt=D/`), so that raw retention can expire it with the raw data it
describes (`layout.RAW_LAYERS` does not hold it; `chatlake.retention` adds it). Light: hashlib; pyarrow only when
the file is written or read.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from chalicelib import layout, parquet
from chalicelib.storage import NotFound, Storage, StorageError

MIN_DIGITS = 5  # forget refuses shorter identifiers (they would match inside unrelated numbers)
ANY = "*"  # the entry of a body that may spell a digit as a JSON escape: always a candidate
FORMAT = "1"
COLUMNS = ["raw_key", "ids"]
_NON_DIGITS = bytes(c if 0x30 <= c <= 0x39 else 0x20 for c in range(256))  # translate: digits kept, rest a space
_ESCAPED_DIGIT = b"\\u003"
_RUN = re.compile(rf"\d{{{MIN_DIGITS},}}")

Hasher = Callable[[bytes], str]


def hasher(pii_salt: str | None) -> Hasher | None:
    """None in clear mode; in hash mode a keyed hash domain-separated from `pii.hasher` and from the deny list."""
    if not pii_salt:
        return None
    key = hashlib.sha256(b"chatlake-mentions\x00" + pii_salt.encode()).digest()
    return lambda run: hashlib.blake2b(run, key=key, digest_size=10).hexdigest()


def entry(body: bytes, hash_run: Hasher | None, denied: Callable[[str], bool] | None = None) -> str:
    """The body's entry (one `translate` and `split` in C: the ETL pays about a microsecond per delivery).
    `denied` (the erasure deny list): a forgotten identifier is filed nowhere, even in a re-delivered old body."""
    if _ESCAPED_DIGIT in body:
        return ANY
    runs = {r for r in body.translate(_NON_DIGITS).split() if len(r) >= MIN_DIGITS}
    if denied is not None:
        runs = {r for r in runs if not denied(r.decode())}
    if hash_run is None:
        return b" ".join(sorted(runs)).decode()
    return " ".join(sorted(hash_run(r) for r in runs))


def digit_run(value: str) -> str | None:
    """The part of an identifier the index files it under (its longest digit run), or None when none is long
    enough (then `forget` reads everything)."""
    runs = sorted(_RUN.findall(value), key=len)
    return runs[-1] if runs else None


def token(value: str, pii_salt: str | None) -> str | None:
    """What an identifier is filed under in the index of this identifier space."""
    run = digit_run(value)
    hash_run = hasher(pii_salt)
    return run if run is None or hash_run is None else hash_run(run.encode())


def _mark(pii_salt: str | None) -> str:
    return "clear" if not pii_salt else "keyed:" + hasher(pii_salt)(b"chatlake-mentions-mark")[:12]  # type: ignore[misc]


def index_file(entries: dict[str, str], pii_salt: str | None, raw_digest: str) -> bytes:
    """`raw_digest`: the day's raw listing the entries cover (`etl.RawListing.digest`), so that `forget` knows the
    index covers the listing without comparing keys."""
    import pyarrow as pa

    keys = sorted(entries)
    data = pa.table({"raw_key": pa.array(keys, pa.string()),
                     "ids": pa.array([entries[k] for k in keys], pa.string())})
    meta = {"format": FORMAT, "ids": _mark(pii_salt), "raw_digest": raw_digest}
    return parquet.record_bytes(data.replace_schema_metadata(meta))


def store(storage: Storage, day: date, raw_digest: str, entries: dict[str, str], pii_salt: str | None,
          warnings: list[str]) -> None:
    """Best effort, like the version file: without it `forget` reads the day's raw data."""
    if not entries:
        return
    try:
        storage.put(layout.mentions_key(day), index_file(entries, pii_salt, raw_digest))
    except StorageError as e:
        warnings.append(f"could not store {layout.mentions_key(day)} ({e}); forget will read {day}'s raw data")


def read(storage: Storage, day: date, pii_salt: str | None) -> Any | None:
    """The day's index as a pyarrow table; None when missing, damaged or of another identifier space (then every
    raw key of the day is read)."""
    return read_file(storage, layout.mentions_key(day), pii_salt)


def read_file(storage: Storage, key: str, pii_salt: str | None) -> Any | None:
    """An index file (a day's, or a fanned-out run's share of one) as a pyarrow table, or None (see `read`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(io.BytesIO(storage.get(key)), page_checksum_verification=True)
        meta = {k.decode(): v.decode() for k, v in (data.schema.metadata or {}).items()}
        if (meta.get("format"), meta.get("ids")) != (FORMAT, _mark(pii_salt)) or data.column_names != COLUMNS:
            return None
        return data
    except (NotFound, StorageError, OSError, ValueError, KeyError, pa.ArrowException):
        return None


def covers(data: Any, raw_digest: str) -> bool:
    """The index lists exactly this raw listing (else `forget` compares keys: some arrived after the day's run)."""
    return bool(raw_digest) and (data.schema.metadata or {}).get(b"raw_digest") == raw_digest.encode()


def keys(data: Any) -> list[str]:
    return data.column("raw_key").to_pylist()


def entries(data: Any) -> dict[str, str]:
    """An index's entries again (raw key -> ids), as `index_file` was given them."""
    return dict(zip(keys(data), data.column("ids").to_pylist(), strict=True))


def may_mention(ids: str, tok: str) -> bool:
    return ids == ANY or tok in ids.split(" ")


def _padded(data: Any) -> Any:
    """Each entry as " run run … ": a run is then a literal " run " (exact, in C)."""
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(" ", data.column("ids"), " ", "")


def candidates(data: Any, tok: str) -> list[str]:
    """The raw keys whose entry can mention `tok` (files it, or is `*`)."""
    import pyarrow.compute as pc

    hits = pc.or_(pc.match_substring(_padded(data), f" {tok} "), pc.equal(data.column("ids"), ANY))
    return data.column("raw_key").filter(pc.fill_null(hits, False)).to_pylist()


def without(data: Any, tok: str, gone: set[str], raw_digest: str) -> bytes | None:
    """The index file once `forget` has deleted `gone` and redacted the rest: the identifier filed nowhere,
    labelled with the day's listing after the deletions. None: nothing to change."""
    import pyarrow as pa
    import pyarrow.compute as pc

    padded = _padded(data)
    hits = pc.fill_null(pc.match_substring(padded, f" {tok} "), False)
    dropped = pc.is_in(data.column("raw_key"), value_set=pa.array(sorted(gone), pa.string()))
    if not (pc.any(hits).as_py() or pc.any(dropped).as_py()):
        return None
    ids = pc.utf8_trim(pc.replace_substring(padded, f" {tok} ", " "), " ")
    meta = {**(data.schema.metadata or {}), b"raw_digest": raw_digest.encode()}
    kept = pa.table({"raw_key": data.column("raw_key"), "ids": ids}).replace_schema_metadata(meta)
    return parquet.record_bytes(kept.filter(pc.invert(dropped)))
