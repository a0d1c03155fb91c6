"""The stage's SSM SecureStrings: which exist, which deploy generates, which it asks for, and how.

Secrets never travel on a command line (where `ps` shows them): deploy puts them with boto3, reads the ones only a
person knows with `getpass` (no echo), or with `--from-env` from the environment (CI). They are never printed.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass

from chatlake.deploy.stage import DeployError, parameter_prefix
from chatlake.deploy.telegram_api import BOT_TOKEN_RE


@dataclass(frozen=True)
class Parameter:
    setting: str  # the setting it holds (contract section 4)
    leaf: str  # the parameter's name under /chatlake/<stage>/
    prompt: str | None  # None: deploy generates a random value
    pattern: re.Pattern[str] | None = None
    hint: str = ""
    optional: str = ""  # not empty: deploy puts it only when given (--from-env), and this says what is off without it

    def name(self, stage: str) -> str:
        return parameter_prefix(stage) + self.leaf


#: The parameters `deploy` makes; the webhook reads the first three, only your machine reads the bot token.
PARAMETERS = (
    Parameter("TELEGRAM_SECRET_TOKEN", "telegram-secret-token", None),
    Parameter("WHATSAPP_VERIFY_TOKEN", "whatsapp-verify-token", None),
    Parameter("WHATSAPP_APP_SECRET", "whatsapp-app-secret", "Meta App Secret (App settings > Basic)",
              re.compile(r"\S{8,256}"), "8 to 256 characters without spaces"),
    Parameter("TELEGRAM_BOT_TOKEN", "telegram-bot-token", "Telegram bot token from @BotFather", BOT_TOKEN_RE,
              "digits, a colon, then letters, digits, _ and -"),
    # The media function's Graph API token (docs/media.md): put by `deploy --from-env` when WHATSAPP_ACCESS_TOKEN
    # is set; never asked (a stage without webhook media would be asked on every deploy): else `aws ssm put-parameter`.
    Parameter("WHATSAPP_ACCESS_TOKEN", "whatsapp-access-token", "WhatsApp access token (system user) for media",
              re.compile(r"[A-Za-z0-9_.|-]{20,2048}"), "20 or more letters and digits, no spaces",
              optional="WhatsApp webhook media are not fetched"),
)


def offered(p: Parameter, from_env: bool, environ: dict[str, str] | None = None) -> bool:
    """Whether deploy puts the parameter when it is missing: always a required one; an optional one only when
    --from-env finds it in the environment."""
    env = os.environ if environ is None else environ
    return not p.optional or (from_env and bool(env.get(p.setting)))


def by_setting(name: str) -> Parameter:
    return next(p for p in PARAMETERS if p.setting == name)


def generate() -> str:
    """A random token in Telegram's secret_token alphabet (A-Z a-z 0-9 _ -), also fine for Meta's verify token."""
    return secrets.token_urlsafe(32)


def asker(from_env: bool, environ: dict[str, str] | None = None,
          read: Callable[[str], str] | None = None) -> Callable[[Parameter], str]:
    """How deploy obtains a secret only a person knows: from the environment with `--from-env`, else typed without
    echo. The value is checked against the parameter's shape; it is never shown, even in an error."""
    env = os.environ if environ is None else environ

    def ask(p: Parameter) -> str:
        if from_env:
            value = env.get(p.setting, "")
            if not value:
                raise DeployError(f"--from-env: {p.setting} is not set in the environment ({p.prompt})")
        else:
            if read is None and not sys.stdin.isatty():
                raise DeployError(f"{p.setting} is needed and stdin is not a terminal: run deploy in a terminal, "
                                  f"or export {p.setting} and pass --from-env")
            value = (read or getpass.getpass)(f"{p.prompt}: ").strip()
        if p.pattern and not p.pattern.fullmatch(value):
            raise DeployError(f"{p.setting} does not look right ({p.hint}); nothing was stored")
        return value

    return ask
