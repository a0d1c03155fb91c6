"""A day's run history: one small JSON manifest per ETL run under `etl/dt=D/runs/`, full or intraday.

A manifest says which raw deliveries the run consumed (their sha256 names, per source), what it added, and when.
The union of a day's manifests is what intraday runs skip, so each raw delivery is read about once a day; a run
that is killed before its manifest only costs the next run a re-read (whose rows it then finds already visible),
never a row twice. The run id sorts by the time the run started, so the folder's key order is the history.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from chalicelib import layout
from chalicelib.storage import NotFound, Storage, StorageError

log = logging.getLogger("chatlake.runlog")

MANIFEST_FORMAT = 1


def new_run_id(kind: str, now: datetime | None = None) -> str:
    """`20261201T151445.123456Z-intraday`: sorts by start time, and says what kind of run it was."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{kind}"


def raw_name(key: str) -> str:
    """A raw key without its day and source folders (both are the manifest's): the body's sha256."""
    return key.rpartition("/")[2].removesuffix(".json")


@dataclass
class Manifest:
    """One run of a day: what it consumed and what it added."""

    run: str
    kind: str  # "full" or "intraday"
    day: date
    started_at: str
    finished_at: str
    seconds: float
    consumed: dict[str, list[str]] = field(default_factory=dict)  # source -> raw names
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows added (full: rows written)
    files: dict[str, str] = field(default_factory=dict)  # table -> key of the file it wrote
    newest_raw_at: float | None = None  # receive time (object mtime) of the newest delivery it consumed
    oldest_raw_at: float | None = None  # ... and of the oldest: how long that one waited is the run's lag

    @property
    def deliveries(self) -> int:
        return sum(len(v) for v in self.consumed.values())

    def raw_keys(self) -> set[str]:
        return {f"{layout.raw_prefix(source, self.day)}{name}.json"
                for source, names in self.consumed.items() for name in names}

    def to_json(self) -> bytes:
        return orjson.dumps({  # compact, keys sorted; fast for a full run's 100k names
            "format": MANIFEST_FORMAT, "run": self.run, "kind": self.kind, "day": self.day.isoformat(),
            "started_at": self.started_at, "finished_at": self.finished_at, "seconds": round(self.seconds, 3),
            "deliveries": self.deliveries, "rows": self.rows, "files": self.files,
            "newest_raw_at": self.newest_raw_at, "oldest_raw_at": self.oldest_raw_at, "consumed": self.consumed,
        }, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        d = orjson.loads(data)  # a full run's manifest names every delivery of the day: 6 MB at 100k
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a chatlake run manifest of this format")
        return cls(run=d["run"], kind=d["kind"], day=date.fromisoformat(d["day"]), started_at=d["started_at"],
                   finished_at=d["finished_at"], seconds=float(d["seconds"]), consumed=dict(d["consumed"]),
                   rows=dict(d["rows"]), files=dict(d["files"]), newest_raw_at=d.get("newest_raw_at"),
                   oldest_raw_at=d.get("oldest_raw_at"))


def consumed_by(source_keys: list[tuple[str, str]]) -> dict[str, list[str]]:
    """(source, raw key) pairs → the manifest's `consumed` form."""
    out: dict[str, list[str]] = {}
    for source, key in source_keys:
        out.setdefault(source, []).append(raw_name(key))
    return out


def write(storage: Storage, manifest: Manifest) -> None:
    storage.put(layout.run_key(manifest.day, manifest.run), manifest.to_json())


def read_all(storage: Storage, day: date) -> list[Manifest]:
    """The day's manifests, oldest first. A damaged one is skipped: its deliveries are read again by the next
    run, which finds their rows already visible and adds none twice."""
    keys = sorted(k for k in storage.keys(layout.runs_prefix(day)) if k.endswith(".json"))

    def fetch(key: str) -> bytes | None:
        try:
            return storage.get(key)
        except NotFound:
            return None
        except StorageError as e:
            log.warning("cannot read the run manifest %s (%s): its deliveries will be read again", key, e)
            return None

    workers = max(1, min(storage.parallel_reads, len(keys)))
    if workers > 1:  # up to one manifest per interval: on S3, read them side by side
        with ThreadPoolExecutor(workers, thread_name_prefix="runlog-read") as pool:
            bodies = list(pool.map(fetch, keys))
    else:
        bodies = [fetch(k) for k in keys]
    out = []
    for key, body in zip(keys, bodies, strict=True):
        if body is None:
            continue
        try:
            out.append(Manifest.from_json(body))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:  # orjson's error is a ValueError
            log.warning("ignoring the damaged run manifest %s (%s): its deliveries will be read again", key, e)
    return out


def consumed_keys(manifests: list[Manifest]) -> set[str]:
    keys: set[str] = set()
    for m in manifests:
        keys |= m.raw_keys()
    return keys


def consumed_names(manifests: list[Manifest]) -> dict[str, set[str]]:
    """Per source, the sha256 names of the deliveries some run consumed (cheaper than whole keys for 1M)."""
    names: dict[str, set[str]] = {}
    for m in manifests:
        for source, consumed in m.consumed.items():
            names.setdefault(source, set()).update(consumed)
    return names


def as_row(m: Manifest) -> dict[str, Any]:
    """A manifest as a line of `status`'s run history."""
    return {"run": m.run, "kind": m.kind, "finished_at": m.finished_at, "deliveries": m.deliveries,
            "messages": m.rows.get("messages", 0), "statuses": m.rows.get("statuses", 0),
            "rejects": m.rows.get("rejects", 0), "seconds": round(m.seconds, 2)}
