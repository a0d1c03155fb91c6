"""The process's settings and lake, built once and shared by the Lambda handlers and the CLI.

Settings are re-read from the environment on each call (cheap; tests change it); the storage
backend is cached per `DATALAKE_URL`, so its S3 client and connections survive between invocations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import layout
from chalicelib import settings as settings_module
from chalicelib.settings import Settings
from chalicelib.storage import S3Storage, Storage, open_storage

if TYPE_CHECKING:
    from chalicelib import etl
    from chalicelib import media_capture as media_capture_module

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


@dataclass(frozen=True)
class EtlContext:
    """What every ETL run needs besides its days: the lake, the PII salt (None: identifiers kept) and the retry
    window. Built in one place so the schedule, `chatlake etl`/`backfill`/`status` and the demo agree."""

    storage: Storage
    pii_salt: str | None
    window: int


def etl_context(s: Settings | None = None) -> EtlContext:
    """The ETL's context from the settings (raises ConfigError for a bad DATALAKE_URL, PII_MODE or window)."""
    s = s or settings()
    return EtlContext(storage(s.datalake_url), s.pii_salt(), s.retry_window_days)


def run_daily_etl() -> list[etl.DayResult]:
    """The schedule's run (the Lambda, and `make run`): every day of the retry window before today that is
    behind, oldest first. Yesterday is behind until it has run; a failed night is repaired by the next one."""
    from datetime import UTC, datetime

    from chalicelib import etl

    s = settings()
    ctx = etl_context(s)
    return etl.catch_up(ctx.storage, datetime.now(UTC).date(), ctx.pii_salt, window=ctx.window,
                        fan_out=fan_out(ctx, s))


def fan_out(ctx: EtlContext, s: Settings) -> Any:
    """In Lambda (AWS_LAMBDA_FUNCTION_NAME is set), a day over FANOUT_DELIVERIES goes to `etl_share` workers
    (`fanout.fan_out_over`); elsewhere (`make run`, the CLI) None: one process runs every day."""
    import os

    from chalicelib import fanout

    own = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if not own or not s.fanout_deliveries:
        return None
    worker = fanout.worker_function(own, ETL_FUNCTION)
    return fanout.fan_out_over(ctx.storage, s.fanout_deliveries, fanout.lambda_invoker(lambda_client(), worker))


def run_etl_share(event: Any) -> dict[str, Any]:
    """The `etl_share` worker (asynchronous invocations from the daily run): its share, and the merge if last."""
    from chalicelib import fanout

    try:
        task = fanout.Task.from_event(event)
    except ValueError as e:  # an invocation by hand with a wrong payload: said, not retried by Lambda
        return {"ok": False, "error": str(e)}
    ctx = etl_context()
    return fanout.work(ctx.storage, task, ctx.pii_salt, window=ctx.window)


#: The scheduled function that fans out (its name in app.py).
ETL_FUNCTION = "daily_etl"


def lambda_client() -> Any:
    """The boto3 Lambda client, built once per process (a warm Lambda keeps it)."""
    if "lambda" not in _clients:
        import boto3

        _clients["lambda"] = boto3.client("lambda")
    return _clients["lambda"]


def run_intraday_etl() -> list:
    """The intraday schedule's run (the Lambda every ETL_INTERVAL_MINUTES, and `make run`): today, incrementally.
    Past days are the daily catch-up's: it finalises them."""
    from datetime import UTC, datetime

    from chalicelib import intraday

    ctx = etl_context()
    return [intraday.run_refresh(ctx.storage, datetime.now(UTC).date(), ctx.pii_salt, window=ctx.window)]


def use_storage(url: str, storage: Storage) -> None:
    """Make `storage(url)` answer with this storage: for tests that build theirs around a moto, throttled or broken
    client, which `open_storage` cannot make from a URL."""
    _storages[url] = storage


def reset() -> None:
    """Forget the cached storages, as a new process (a Lambda cold start) would: the cache keeps a warm Lambda's S3
    client and connections between invocations; tests call this so no storage leaks from one test into the next."""
    _storages.clear()
    _clients.clear()


# --- media capture (issue 12) ------------------------------------------------------------------------------------

#: How often the media function runs (minutes), and how long a run starts new fetches (its timeout is 300 s).
MEDIA_EVERY_MINUTES = 5
MEDIA_BUDGET_SECONDS = 240.0
MEDIA_TOKENS = {"whatsapp": "WHATSAPP_ACCESS_TOKEN", "telegram": "TELEGRAM_BOT_TOKEN"}


def media_capture(s: Settings | None = None, budget: float | None = None) -> media_capture_module.Capture:
    """A capture run's context from the settings: a fetcher per platform whose token is set (the others are
    `disabled`, with the reason), the size limit, and the URL policy (the explicit API base URLs are trusted)."""
    from chalicelib import media
    from chalicelib import media_capture as mc
    from chalicelib.settings import ConfigError

    s = s or settings()
    http = media.Http(media.UrlPolicy(trusted=s.explicit_api_urls), media.Limits(max_bytes=s.media_max_bytes))
    fetchers: dict[str, mc.Fetcher] = {}
    disabled: dict[str, str] = {}
    for source, name in MEDIA_TOKENS.items():
        try:
            token = s.get(name)
        except ConfigError as e:
            disabled[source] = str(e)
            continue
        if not token:
            disabled[source] = f"{name} is not set: set it (or {name}_PARAM), then run chatlake media fetch"
        elif source == "whatsapp":
            fetchers[source] = media.WhatsAppMedia(http, token, s.graph_api_url)
        else:
            fetchers[source] = media.TelegramMedia(http, token, s.telegram_api_url)
    lake = storage(s.datalake_url)
    eum_media = None
    if isinstance(lake, S3Storage):
        from chalicelib.media_eum import EumMedia

        eum_media = EumMedia(social_messaging(lake), lake, http.limits, http.spool)
    else:
        disabled[layout.EUM_SOURCE] = ("media of End User Messaging Social messages are copied to S3 by the service "
                                       "(GetWhatsAppMessageMedia): they need the lake on S3 (DATALAKE_URL=s3://...)")
    return mc.Capture(lake, fetchers, disabled, s.pii_salt(), budget=budget, eum=eum_media)


_clients: dict[str, Any] = {}


def social_messaging(lake: S3Storage) -> Any:
    """The boto3 `socialmessaging` client, built once per process (a warm Lambda keeps it): in the region the
    environment names, else the lake's bucket's."""
    if "socialmessaging" not in _clients:
        import boto3
        from botocore.config import Config

        region = boto3.session.Session().region_name or lake.client.meta.region_name
        _clients["socialmessaging"] = boto3.client("socialmessaging", region_name=region,
                                                   config=Config(retries={"max_attempts": 3, "mode": "standard"}))
    return _clients["socialmessaging"]


def use_client(service: str, client: Any) -> None:
    """Make this process's boto3 client of `service` ("lambda", "socialmessaging") this one: tests bring a stubbed
    Lambda client (moto's invoke needs docker) and a fake `socialmessaging` (moto has none)."""
    _clients[service] = client


def run_media_capture() -> list[media_capture_module.DayCapture]:
    """The schedule's run (the Lambda, and `make run`): nothing when MEDIA_CAPTURE is off; else the window's days."""
    from datetime import UTC, datetime

    from chalicelib import media_capture as mc

    s = settings()
    if not s.media_capture():
        return []
    return mc.run(media_capture(s, MEDIA_BUDGET_SECONDS), datetime.now(UTC).date())
