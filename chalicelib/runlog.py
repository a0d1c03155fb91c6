"""A day's run history: one small JSON manifest per ETL run under `etl/dt=D/runs/`, full or intraday.

A manifest says which raw deliveries the run consumed (their sha256 names, per source), what it added, and when.
The union of a day's manifests is what intraday runs skip, so each raw delivery is read about once a day; a run
that is killed before its manifest only costs the next run a re-read (whose rows it then finds already visible),
never a row twice. The run id sorts by the time the run started, so the folder's key order is the history.

A folder lake also notes each raw delivery's name in an arrivals journal per raw folder (`FolderStorage.arrivals`);
a manifest then says where in each journal the run's consumption ends (`arrivals`: source -> [inode, offset]),
and the next intraday run reads the journal from there instead of listing the day. A full run's mark is taken
before its listing, so the lines it names are all in that listing. S3 has no such journal: a run lists the day
(pages of 1,000 keys) and skips the consumed names.

Format 2 writes each source's consumed names as one string, sorted and joined by newlines: a full run's manifest
names every delivery of the day, and one long JSON string parses in a fraction of the time of 100k short ones.
Format 1 manifests (a list of names per source) are still read.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from chalicelib import layout
from chalicelib.storage import NotFound, Storage, StorageError

log = logging.getLogger("chatlake.runlog")

MANIFEST_FORMAT = 2
READABLE_FORMATS = (1, 2)


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
    consumed: dict[str, list[str]] = field(default_factory=dict)  # source -> raw names (sorted when read)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows added (full: rows written)
    files: dict[str, str] = field(default_factory=dict)  # table -> key of the file it wrote
    newest_raw_at: float | None = None  # receive time (object mtime) of the newest delivery it consumed
    oldest_raw_at: float | None = None  # ... and of the oldest: how long that one waited is the run's lag
    arrivals: dict[str, list[int]] | None = None  # source -> [inode, offset]: how far the run read each journal

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
            "newest_raw_at": self.newest_raw_at, "oldest_raw_at": self.oldest_raw_at, "arrivals": self.arrivals,
            "consumed": {source: "\n".join(sorted(names)) for source, names in self.consumed.items()},
        }, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        d = orjson.loads(data)  # a full run's manifest names every delivery of the day: 6.5 MB at 100k
        if not isinstance(d, dict) or d.get("format") not in READABLE_FORMATS:
            raise ValueError("not a chatlake run manifest of a known format")
        consumed = {source: names.split("\n") if names else [] for source, names in d["consumed"].items()} \
            if d["format"] == 2 else {source: sorted(names) for source, names in d["consumed"].items()}
        arrivals = d.get("arrivals")
        return cls(run=d["run"], kind=d["kind"], day=date.fromisoformat(d["day"]), started_at=d["started_at"],
                   finished_at=d["finished_at"], seconds=float(d["seconds"]), consumed=consumed,
                   rows=dict(d["rows"]), files=dict(d["files"]), newest_raw_at=d.get("newest_raw_at"),
                   oldest_raw_at=d.get("oldest_raw_at"), arrivals=dict(arrivals) if arrivals else None)


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


def consumed_among(manifests: list[Manifest], source: str, names: set[str]) -> set[str]:
    """Which of a few `names` of `source` some manifest (read by `read_all`: its names sorted) says a run
    consumed: a binary search in each, where `consumed_names` would build a set of the day's 100k."""
    found = set()
    for m in manifests:
        consumed = m.consumed.get(source, ())
        for name in names:
            at = bisect_left(consumed, name)
            if at < len(consumed) and consumed[at] == name:
                found.add(name)
    return found


def arrival_marks(manifests: list[Manifest]) -> dict[str, tuple[int, int]] | None:
    """Where the latest run that read the arrivals journals left each source's (None: no run did, or the latest
    ones did not say: a fanned-out run, an S3 lake). Any run's marks are safe to resume from: each covers only
    what that run consumed; a killed run left none, so the next one reads its deliveries again."""
    for m in reversed(manifests):
        if m.arrivals is not None:
            return {source: (int(mark[0]), int(mark[1])) for source, mark in m.arrivals.items()}
    return None


def marks_now(storage: Storage, day: date) -> dict[str, list[int]] | None:
    """Where each source's arrivals journal of the day ends now (a folder lake; None elsewhere): taken by a full
    run before it lists the day."""
    mark = getattr(storage, "arrival_mark", None)
    if mark is None:
        return None
    return {source: list(mark(layout.raw_prefix(source, day))) for source in layout.RAW_SOURCES}


def as_row(m: Manifest) -> dict[str, Any]:
    """A manifest as a line of `status`'s run history."""
    return {"run": m.run, "kind": m.kind, "finished_at": m.finished_at, "deliveries": m.deliveries,
            "messages": m.rows.get("messages", 0), "statuses": m.rows.get("statuses", 0),
            "rejects": m.rows.get("rejects", 0), "seconds": round(m.seconds, 2)}
