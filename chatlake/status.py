"""What the lake holds per day, and whether a day's ETL output is behind its raw data (`status`).

"Behind" is the ETL's own rule (`etl.behind_reason`): the output is not what a run now would write, because
raw deliveries arrived since, a day in its retry window changed, its last run did not finish, or its files are
not those of that run. The schedule's catch-up runs exactly those days.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta

from chalicelib import etl, layout
from chalicelib.storage import Storage, StorageError


@dataclass
class DayStatus:
    day: date
    raw: dict[str, int] = field(default_factory=dict)  # deliveries per source
    quarantined: int = 0
    rows: dict[str, int | None] = field(default_factory=dict)  # per table; None: no output yet (or unreadable)
    reason: str | None = None  # why the day is behind; None when its output is current
    media: dict[str, int] = field(default_factory=dict)  # media table rows per status (empty: no media table)

    @property
    def behind(self) -> bool:
        """The day needs (re-)running: see `etl.behind_reason`."""
        return self.reason is not None

    @property
    def has_raw(self) -> bool:
        return any(self.raw.values())


def is_behind(storage: Storage, day: date, pii_salt: str | None = None,
              window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> bool:
    return etl.behind_reason(storage, day, pii_salt, window=window) is not None


def day_status(storage: Storage, day: date, pii_salt: str | None = None, window: int = etl.DEFAULT_RETRY_WINDOW_DAYS,
               listings: dict | None = None) -> DayStatus:
    import pyarrow.parquet as pq

    listings = {} if listings is None else listings
    status = DayStatus(day)
    listing = etl.list_raw(storage, day, listings)
    status.raw = {source: sum(1 for s, _ in listing.objects if s == source) for source in layout.SOURCES}
    status.reason = etl.behind_reason(storage, day, pii_salt, window=window, listings=listings)
    status.quarantined = sum(k.endswith(".body") for source in layout.SOURCES
                             for k in storage.keys(layout.quarantine_prefix(source, day)))
    for table in layout.TABLES:
        files = [k for k in storage.keys(layout.enriched_prefix(table, day)) if k.endswith(".parquet")]
        try:
            counts = [pq.ParquetFile(io.BytesIO(storage.get(k))).metadata.num_rows for k in files]
            status.rows[table] = sum(counts) if files else None
        except (OSError, ValueError, StorageError):
            status.rows[table] = None
    status.media = media_counts(storage, day)
    return status


def media_counts(storage: Storage, day: date) -> dict[str, int]:
    """The day's media rows per status (`stored`, `pending`, `failed`, ...); empty when capture never ran."""
    from chalicelib import media_capture

    try:
        rows, _ = media_capture.read_table(storage, day)
    except StorageError:
        return {}
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def media_cell(counts: dict[str, int]) -> str:
    """`stored/pending/failed` for the status table ("" without media); failed counts every status that will
    not be stored (failed, too_large, expired, disabled)."""
    if not counts:
        return ""
    failed = sum(n for s, n in counts.items() if s not in ("stored", "pending"))
    return f"{counts.get('stored', 0)}/{counts.get('pending', 0)}/{failed}"


def recent(storage: Storage, today: date, days: int, pii_salt: str | None = None,
           window: int = etl.DEFAULT_RETRY_WINDOW_DAYS) -> list[DayStatus]:
    """The last `days` days, today included, newest first."""
    listings: dict = {}
    return [day_status(storage, today - timedelta(days=i), pii_salt, window, listings) for i in range(days)]
