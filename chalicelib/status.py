"""What the lake holds per day, and whether a day's ETL output is behind its raw data (`status`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta

from . import lake
from .storage import Storage, StorageError


@dataclass
class DayStatus:
    day: date
    raw: dict[str, int] = field(default_factory=dict)  # deliveries per source
    quarantined: int = 0
    rows: dict[str, int | None] = field(default_factory=dict)  # per table; None: no output yet (or unreadable)
    newest_raw: float | None = None  # mtime of the newest raw delivery
    oldest_output: float | None = None  # mtime of the oldest output file, None unless every table has one

    @property
    def behind(self) -> bool:
        """Raw data that the day's output does not include yet: the day needs (re-)running."""
        return self.newest_raw is not None and (self.oldest_output is None or self.oldest_output < self.newest_raw)


def _freshness(storage: Storage, day: date, status: DayStatus) -> list[str]:
    """Fill in raw counts and times; return the day's output files."""
    for source in lake.SOURCES:
        objects = list(storage.list(lake.raw_prefix(source, day)))
        status.raw[source] = len(objects)
        if objects:
            newest = max(o.mtime for o in objects)
            status.newest_raw = max(newest, status.newest_raw or newest)
    outputs = {t: list(storage.list(lake.enriched_prefix(t, day))) for t in lake.TABLES}
    if all(outputs.values()):
        status.oldest_output = min(o.mtime for files in outputs.values() for o in files)
    return [o.key for files in outputs.values() for o in files]


def is_behind(storage: Storage, day: date) -> bool:
    """Whether the day's ETL output is missing or older than the day's newest raw delivery."""
    status = DayStatus(day)
    _freshness(storage, day, status)
    return status.behind


def day_status(storage: Storage, day: date) -> DayStatus:
    import pyarrow.parquet as pq

    status = DayStatus(day)
    outputs = _freshness(storage, day, status)
    status.quarantined = sum(k.endswith(".body") for source in lake.SOURCES
                             for k in storage.keys(lake.quarantine_prefix(source, day)))
    for table in lake.TABLES:
        files = [k for k in outputs if k.startswith(lake.enriched_prefix(table, day)) and k.endswith(".parquet")]
        try:
            counts = [pq.ParquetFile(io.BytesIO(storage.get(k))).metadata.num_rows for k in files]
            status.rows[table] = sum(counts) if files else None
        except (OSError, ValueError, StorageError):
            status.rows[table] = None
    return status


def recent(storage: Storage, today: date, days: int) -> list[DayStatus]:
    """The last `days` days, today included, newest first."""
    return [day_status(storage, today - timedelta(days=i)) for i in range(days)]
