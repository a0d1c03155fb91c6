"""What the lake holds per day, and whether a day's ETL output is behind its raw data (`status`).

"Behind" is the ETL's own rule (`etl.behind_reason`): the output is not what a run now would write, because
raw deliveries arrived since, a day in its retry window changed, its last run did not finish, or its files are
not those of that run. The schedule's catch-up runs exactly those days.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chalicelib import etl, intraday, layout, runlog
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
               listings: dict | None = None, *, now: datetime | None = None,
               interval_minutes: int = etl.DEFAULT_INTERVAL_MINUTES) -> DayStatus:
    import pyarrow.parquet as pq

    listings = {} if listings is None else listings
    status = DayStatus(day)
    listing = etl.list_raw(storage, day, listings)
    status.raw = {source: sum(1 for s, _ in listing.objects if s == source) for source in layout.RAW_SOURCES}
    status.reason = etl.behind_reason(storage, day, pii_salt, window=window, listings=listings, now=now,
                                      interval_minutes=interval_minutes)
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
           window: int = etl.DEFAULT_RETRY_WINDOW_DAYS, *, now: datetime | None = None,
           interval_minutes: int = etl.DEFAULT_INTERVAL_MINUTES) -> list[DayStatus]:
    """The last `days` days, today included, newest first."""
    listings: dict = {}
    return [day_status(storage, today - timedelta(days=i), pii_salt, window, listings, now=now,
                       interval_minutes=interval_minutes) for i in range(days)]


def _at(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def today_summary(f: intraday.Freshness, now: datetime, interval_minutes: int) -> dict[str, Any]:
    """How fresh today's rows are: the newest raw delivery against the newest one in a row, and the runs."""
    return {"day": str(f.day), "deliveries": f.deliveries, "newest_raw_at": _at(f.newest_raw_at),
            "newest_row_at": _at(f.newest_row_at), "pending": f.pending,
            "oldest_pending_at": _at(f.oldest_pending_at), "lag_seconds": round(f.lag_seconds(now), 1),
            "interval_minutes": interval_minutes, "runs": [runlog.as_row(m) for m in f.runs]}


def command(storage: Storage, days: int, pii_salt: str | None, window: int, interval_minutes: int,
            fmt: str = "table", now: datetime | None = None) -> int:
    """`chatlake status`: exit 1 when a day is behind (today included: a delivery waits more than two intervals),
    so `status --format json` can drive cron on a laptop."""
    from chatlake import ui

    now = now or datetime.now(UTC)
    today = now.date()
    recent_days = recent(storage, today, days, pii_salt, window, now=now, interval_minutes=interval_minutes)
    fresh = intraday.freshness(storage, today)
    summary = today_summary(fresh, now, interval_minutes)
    behind = sorted(d.day for d in recent_days if d.behind)

    def state(d: DayStatus) -> str:
        if d.behind:
            return f"BEHIND: {d.reason}"
        if d.day == today:
            if not fresh.deliveries:
                return "today: no deliveries yet"
            if fresh.pending:
                return f"today: {fresh.pending} deliveries wait for the next intraday run"
            return "today: every delivery is in a row (finalised after midnight UTC)"
        if d.has_raw:
            return "ok"
        return "ok (no deliveries)" if any(n is not None for n in d.rows.values()) else "no data"

    rows = [{"day": str(d.day), **d.raw, "quarantined": d.quarantined, **d.rows,
             "media stored/pending/failed": media_cell(d.media), "state": state(d)} for d in recent_days]
    if fmt == "json":
        ui.print_json({"lake": storage.url, "behind": [str(d) for d in behind], "today": summary,
                       "days": [{**{k: v for k, v in row.items() if k != "media stored/pending/failed"},
                                 "media": d.media, "behind": d.behind, "reason": d.reason}
                                for row, d in zip(rows, recent_days, strict=True)]})
    else:
        _print_tables(storage, rows, fresh, summary, today, interval_minutes)
    past = [d for d in behind if d != today]
    if past:
        print(f"{len(past)} day(s) behind their raw data: run chatlake backfill --start {past[0]} --end {past[-1]}",
              file=sys.stderr)
    if today in behind:
        print("today is behind: run chatlake refresh (and check that the intraday schedule runs)", file=sys.stderr)
    return 1 if behind else 0


def _print_tables(storage: Storage, rows: list[dict], fresh: intraday.Freshness, summary: dict, today: date,
                  interval_minutes: int) -> None:
    from chatlake import ui

    ui.print_table(rows, [*rows[0]] if rows else [],
                   title=f"chatlake status: {storage.url} (raw deliveries, quarantined bodies, rows written)")
    if fresh.deliveries:
        print(f"today ({today}): newest raw delivery {summary['newest_raw_at']}, newest in a row "
              f"{summary['newest_row_at'] or 'none yet'}, {fresh.pending} waiting "
              f"(lag {summary['lag_seconds']:.0f} s; intraday runs every {interval_minutes} min)")
    if fresh.runs:
        history = [runlog.as_row(m) for m in fresh.runs[-10:]]
        ui.print_table(history, list(history[0]), title=f"today's runs ({len(fresh.runs)}, the last 10)")
