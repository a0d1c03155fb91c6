"""`set-telegram-webhook`: register chatlake's `/telegram` route with the Bot API, then show what Telegram sees.

The bot token is part of every Bot API URL (`/bot<token>/<method>`), so no URL and no exception text from the
HTTP layer is ever printed as is: every message goes through `_scrub`. urllib keeps this free of dependencies.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlparse

from chalicelib.settings import ConfigError, Settings
from chalicelib.telegram import MESSAGE_KINDS

#: The update kinds the ETL turns into `messages` rows: Telegram sends nothing else (less traffic, less cost).
ALLOWED_UPDATES: tuple[str, ...] = tuple(MESSAGE_KINDS)
ROUTE = "/telegram"
# What @BotFather hands out: the bot's numeric id, a colon, a secret. Checked before it goes into a URL path.
BOT_TOKEN_RE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
TIMEOUT_SECONDS = 15


class TelegramError(Exception):
    """The Bot API refused a call or could not be reached; the message never holds the bot token."""


def webhook_url(text: str) -> str:
    """An HTTPS URL of the `/telegram` route (argparse type: a bad one is a usage error, exit 2)."""
    import argparse

    parsed = urlparse(text)
    if parsed.scheme != "https" or not parsed.netloc:
        raise argparse.ArgumentTypeError(f"{text!r}: Telegram only calls https:// webhook URLs")
    if not parsed.path.rstrip("/").endswith(ROUTE):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not the {ROUTE} route: use e.g. https://abc123.execute-api.us-east-1.amazonaws.com/api/telegram"
        )
    return text


def bot_token(settings: Settings) -> str:
    token = settings.get("TELEGRAM_BOT_TOKEN")
    if not token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set: export the token @BotFather gave you as TELEGRAM_BOT_TOKEN "
                          "(or TELEGRAM_BOT_TOKEN_PARAM=<name of an SSM SecureString holding it>)")
    if not BOT_TOKEN_RE.fullmatch(token):
        raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then letters, "
                          "digits, _ and -, as @BotFather gives it)")
    return token


@dataclass(frozen=True)
class BotApi:
    """The few Bot API calls chatlake makes, as JSON POSTs to `<base_url>/bot<token>/<method>`."""

    base_url: str
    token: str
    timeout: float = TIMEOUT_SECONDS

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "<bot token>")

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """The call's `result`; TelegramError with Telegram's own description when it says ok: false."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"{self.base_url}/bot{self.token}/{method}",
            data=json.dumps(params or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as e:  # Telegram answers errors with a status and a JSON body
            body = e.read()
            status = e.code
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TelegramError(self._scrub(f"cannot reach the Bot API at {self.base_url} ({reason})")) from None
        else:
            status = 200
        try:
            reply = json.loads(body)
        except ValueError:
            raise TelegramError(f"{method}: the Bot API answered HTTP {status} with a body that is not JSON") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            description = reply.get("description") if isinstance(reply, dict) else None
            code = reply.get("error_code", status) if isinstance(reply, dict) else status
            raise TelegramError(self._scrub(f"Telegram refused {method}: {description or 'no description'} ({code})"))
        return reply.get("result")


def set_webhook(api: BotApi, url: str, secret_token: str, allowed_updates: Sequence[str] = ALLOWED_UPDATES) -> Any:
    """Point the bot at `url`. Pending updates are kept: Telegram delivers them once the webhook answers."""
    return api.call("setWebhook", {
        "url": url,
        "secret_token": secret_token,
        "allowed_updates": list(allowed_updates),
        "drop_pending_updates": False,
    })


def _when(unix: Any) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_webhook(info: Mapping[str, Any]) -> list[str]:
    """getWebhookInfo as lines a person reads: where, how much is waiting, what last went wrong."""
    error = "none"
    if info.get("last_error_date"):
        error = f"{_when(info['last_error_date'])}: {info.get('last_error_message') or '(no message)'}"
    allowed = info.get("allowed_updates")
    rows = [
        ("url", info.get("url") or "(none: no webhook is set)"),
        ("pending_update_count", str(info.get("pending_update_count", 0))),
        ("last_error", error),
        ("allowed_updates", ", ".join(allowed) if allowed else "(all except chat_member, message_reaction*)"),
    ]
    if info.get("last_synchronization_error_date"):
        rows.append(("last_synchronization_error", _when(info["last_synchronization_error_date"])))
    return [f"{name + ':':<28}{value}" for name, value in rows]


def command(url: str, settings: Settings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`set-telegram-webhook --url URL`: setWebhook with the secret token, then getWebhookInfo."""
    out, err = out or sys.stdout, err or sys.stderr
    api = BotApi(settings.telegram_api_url, bot_token(settings))
    secret = settings.telegram_secret_token()
    try:
        set_webhook(api, url, secret)
        print(f"webhook set: {url} (updates: {', '.join(ALLOWED_UPDATES)})", file=out)
        info = api.call("getWebhookInfo")
    except TelegramError as e:
        print(f"error: {e}", file=err)
        return 1
    print("Telegram's view of the webhook (getWebhookInfo):", file=out)
    for line in describe_webhook(info if isinstance(info, dict) else {}):
        print(f"  {line}", file=out)
    if isinstance(info, dict) and info.get("url") and info["url"] != url:
        print(f"error: Telegram reports the webhook as {info['url']}, not {url}", file=err)
        return 1
    return 0
