"""The process's settings and lake, built once and shared by the Lambda handlers and the CLI.

Settings are re-read from the environment on each call (cheap; tests change it); the storage
backend is cached per `DATALAKE_URL`, so its S3 client and connections survive between invocations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import settings as settings_module
from chalicelib.settings import Settings
from chalicelib.storage import Storage, open_storage

if TYPE_CHECKING:
    from chalicelib import etl

_storages: dict[str, Storage] = {}


def settings() -> Settings:
    return settings_module.load()


def storage(url: str | None = None) -> Storage:
    url = url or settings().datalake_url
    if url not in _storages:
        _storages[url] = open_storage(url)
    return _storages[url]


#: When the daily ETL runs (UTC): shortly after midnight, for the day that just ended.
DAILY_ETL_AT = (0, 5)  # (hour, minute)


def run_daily_etl() -> list[etl.DayResult]:
    """The schedule's run (the Lambda, and `make run`): every day of the retry window before today that is
    behind, oldest first. Yesterday is behind until it has run; a failed night is repaired by the next one."""
    from datetime import UTC, datetime

    from chalicelib import etl

    s = settings()
    return etl.catch_up(storage(s.datalake_url), datetime.now(UTC).date(), s.pii_salt(), window=s.retry_window_days)


def run_intraday_etl() -> list:
    """The intraday schedule's run (the Lambda every ETL_INTERVAL_MINUTES, and `make run`): today, incrementally.
    Past days are the daily catch-up's: it finalises them."""
    from datetime import UTC, datetime

    from chalicelib import intraday

    s = settings()
    today = datetime.now(UTC).date()
    return [intraday.run_refresh(storage(s.datalake_url), today, s.pii_salt(), window=s.retry_window_days)]
