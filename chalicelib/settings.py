"""Settings from the contract's section 4: the environment first, then a git-ignored `.env`.

Secrets may be given as `NAME_PARAM`, the name of an SSM SecureString; it is read once per process
(once per Lambda cold start) and cached. Nothing here touches the network until a secret is asked for.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.values import digits

DEFAULT_DATALAKE_URL = "./datalake"
DOTENV_PATH = ".env"

#: Every setting the contract names (and the one the deploy issue adds: TELEGRAM_API_URL).
NAMES = (
    "DATALAKE_URL",
    "TELEGRAM_SECRET_TOKEN",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_APP_SECRET",
    "ATHENA_DATABASE",
    "ATHENA_WORKGROUP",
    "ATHENA_OUTPUT_URL",
    "PII_MODE",
    "PII_SALT",
    "RETRY_WINDOW_DAYS",
    "WHATSAPP_ACCESS_TOKEN",
    "GRAPH_API_URL",
    "MEDIA_CAPTURE",
    "MEDIA_MAX_BYTES",
    "ETL_INTERVAL_MINUTES",
    "WHATSAPP_EUM_TOPIC",
    "RAW_RETENTION_DAYS",
    "TABLE_RETENTION_DAYS",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "FANOUT_DELIVERIES",
)
#: Settings that may come from SSM Parameter Store through `NAME_PARAM`.
SECRETS = (
    "TELEGRAM_SECRET_TOKEN",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_APP_SECRET",
    "PII_SALT",
    "TELEGRAM_BOT_TOKEN",
    "WHATSAPP_ACCESS_TOKEN",
)
# Telegram's own rule for setWebhook's secret_token.
TELEGRAM_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and what to do."""


_dotenv_cache: dict[str, dict[str, str]] = {}
_ssm_cache: dict[str, str] = {}
_ssm_lock = threading.Lock()


def read_dotenv(path: str = DOTENV_PATH) -> dict[str, str]:
    """The `.env` file's values (cached per path; python-dotenv is only imported when the file exists)."""
    if path not in _dotenv_cache:
        values: dict[str, str] = {}
        if Path(path).is_file():
            from dotenv import dotenv_values

            values = {k: v for k, v in dotenv_values(path).items() if v is not None}
        _dotenv_cache[path] = values
    return _dotenv_cache[path]


def reset() -> None:
    """Forget the cached `.env` files and SSM values, as a new process (a Lambda cold start) would. The caches are
    what keeps a warm Lambda from re-reading them on every request; tests, and `make run` after it writes `.env`,
    call this so the next read sees the new values."""
    with _ssm_lock:
        _ssm_cache.clear()
    _dotenv_cache.clear()


def _default_ssm_client() -> Any:
    import boto3

    return boto3.client("ssm")


@dataclass(frozen=True)
class Settings:
    """The settings seen through the environment, then `.env`; read on use, so a request pays only
    for the few settings it needs, and secrets are resolved on first use."""

    # repr=False: they hold every secret, and a Settings printed in an error or a log line must not show them.
    env: Mapping[str, str] = field(repr=False)
    dotenv: Mapping[str, str] = field(default_factory=dict, repr=False)
    ssm_client_factory: Callable[[], Any] = field(default=_default_ssm_client, repr=False)

    def _raw(self, name: str) -> str | None:
        return self.env.get(name) or self.dotenv.get(name) or None

    def get(self, name: str) -> str | None:
        """A setting's value. The environment wins over `.env` as a whole: in each, a plain value first, then
        (for secrets) its SSM parameter. So `NAME_PARAM` exported for a deployed stage is not overridden by
        the local secret `make run` wrote to `.env`."""
        if name not in SECRETS:
            return self._raw(name)
        for layer in (self.env, self.dotenv):
            if value := layer.get(name):
                return value
            if param := layer.get(f"{name}_PARAM"):
                return self._from_ssm(param)
        return None

    def _from_ssm(self, param: str) -> str:
        with _ssm_lock:
            if param not in _ssm_cache:
                client = self.ssm_client_factory()
                try:
                    reply = client.get_parameter(Name=param, WithDecryption=True)
                except client.exceptions.ParameterNotFound:
                    raise ConfigError(
                        f"SSM parameter {param!r} does not exist: create it as a SecureString "
                        f"(aws ssm put-parameter --type SecureString --name {param} --value ...)"
                    ) from None
                _ssm_cache[param] = reply["Parameter"]["Value"]
            return _ssm_cache[param]

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ConfigError(f"{name} is not set")
        return value

    @property
    def datalake_url(self) -> str:
        return self._raw("DATALAKE_URL") or DEFAULT_DATALAKE_URL

    @property
    def athena_database(self) -> str:
        return self._raw("ATHENA_DATABASE") or "chatlake"

    @property
    def telegram_api_url(self) -> str:
        return (self._raw("TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/")

    def telegram_secret_token(self) -> str:
        """The webhook secret, checked against Telegram's own alphabet so a typo fails loudly."""
        token = self.require("TELEGRAM_SECRET_TOKEN")
        if not TELEGRAM_SECRET_RE.fullmatch(token):
            raise ConfigError(
                "TELEGRAM_SECRET_TOKEN must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "(Telegram's rule for secret_token)"
            )
        return token

    @property
    def retry_window_days(self) -> int:
        """RETRY_WINDOW_DAYS: how many days back a later delivery of a message is still known as a retry (default
        7, WhatsApp's retry period). One number for the ETL's duplicate check, `status` and the catch-up."""
        return self._whole("RETRY_WINDOW_DAYS", 7, "days", 0, 366)

    def pii_salt(self) -> str | None:
        """The salt when `PII_MODE=hash`, None when identifiers are kept."""
        mode = (self._raw("PII_MODE") or "keep").lower()
        if mode == "keep":
            return None
        if mode != "hash":
            raise ConfigError(f"PII_MODE must be 'keep' or 'hash', not {mode!r}")
        salt = self.get("PII_SALT")
        if not salt:
            raise ConfigError("PII_MODE=hash needs PII_SALT (any long random string; keep it secret)")
        return salt

    @property
    def etl_interval_minutes(self) -> int:
        """ETL_INTERVAL_MINUTES: how often the intraday run brings today up to date (default 15, 1 to 1440); today
        is behind when a delivery older than two intervals is not in a row yet."""
        return self._whole("ETL_INTERVAL_MINUTES", 15, "minutes", 1, 1440)

    @property
    def whatsapp_eum_topic(self) -> str | None:
        """WHATSAPP_EUM_TOPIC: the SNS topic (name or ARN) of AWS End User Messaging Social's WhatsApp events."""
        return self._raw("WHATSAPP_EUM_TOPIC")

    # --- media capture (issue 12) ---

    @property
    def graph_api_url(self) -> str:
        return (self._raw("GRAPH_API_URL") or "https://graph.facebook.com").rstrip("/")

    @property
    def explicit_api_urls(self) -> tuple[str, ...]:
        """The platform base URLs set explicitly (GRAPH_API_URL, TELEGRAM_API_URL): media may be fetched from
        their scheme and host too, even over plain HTTP on a private address (the tests' fakes)."""
        return tuple(u.rstrip("/") for n in ("GRAPH_API_URL", "TELEGRAM_API_URL") if (u := self._raw(n)))

    def media_capture(self) -> bool:
        """MEDIA_CAPTURE: `on` or `off`; unset, it is on once a media token (or its `_PARAM`) is set."""
        text = (self._raw("MEDIA_CAPTURE") or "").lower()
        if text in ("on", "off"):
            return text == "on"
        if text:
            raise ConfigError(f"MEDIA_CAPTURE must be 'on' or 'off', not {text!r}")
        names = ("WHATSAPP_ACCESS_TOKEN", "TELEGRAM_BOT_TOKEN")
        return any(layer.get(n) or layer.get(f"{n}_PARAM") for layer in (self.env, self.dotenv) for n in names)

    @property
    def media_max_bytes(self) -> int:
        """MEDIA_MAX_BYTES: the largest media file captured (default 100 MiB; WhatsApp documents go to 100 MB)."""
        return self._whole("MEDIA_MAX_BYTES", 100 * 1024 * 1024, "bytes", 1)

    def retention_days(self, name: str) -> int | None:
        """RAW_RETENTION_DAYS / TABLE_RETENTION_DAYS: whole days (1 or more) to keep a layer; None (unset): forever."""
        return self._whole(name, None, "days", 1, unset="unset to keep forever")

    @property
    def raw_retention_days(self) -> int | None:
        return self.retention_days("RAW_RETENTION_DAYS")

    @property
    def table_retention_days(self) -> int | None:
        return self.retention_days("TABLE_RETENTION_DAYS")

    @property
    def fanout_deliveries(self) -> int:
        """FANOUT_DELIVERIES: a day with more raw deliveries than this has its full run in AWS fanned out over
        workers of about half as many each (default 500000: one invocation reads about 1M in 8 minutes); 0: never."""
        return self._whole("FANOUT_DELIVERIES", 500000, "deliveries", 0, unset="0 never fans out")

    def _whole(self, name: str, default: Any, unit: str, low: int, high: int | None = None, unset: str = "") -> Any:
        """A setting that is a whole number from `low` to `high` (no bound: None); `default` where it is unset."""
        text = self._raw(name)
        if not text:
            return default
        number = digits(text, 18)
        if number is None or number < low or (high is not None and number > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise ConfigError(f"{name} must be a whole number of {unit}, {bounds}{f'; {unset}' if unset else ''}; "
                              f"not {text!r}")
        return number


def load(
    environ: Mapping[str, str] | None = None,
    dotenv_path: str = DOTENV_PATH,
    ssm_client_factory: Callable[[], Any] | None = None,
) -> Settings:
    """Settings from `environ` (default: the process environment), falling back to `.env`."""
    env = os.environ if environ is None else environ
    if ssm_client_factory is None:
        return Settings(env, read_dotenv(dotenv_path))
    return Settings(env, read_dotenv(dotenv_path), ssm_client_factory)
