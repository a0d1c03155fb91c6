"""`set-telegram-webhook` against a fake Bot API on 127.0.0.1: what is sent, what is printed, what never is."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib import settings
from chalicelib.telegram import MESSAGE_KINDS
from chatlake import cli
from chatlake.deploy import telegram_api
from chatlake.local import fake_platforms
from tests.conftest import free_port

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "tg-Secret_0123456789"
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/api/telegram"
WEBHOOK_INFO = {
    "url": URL,
    "has_custom_certificate": False,
    "pending_update_count": 3,
    "last_error_date": 1764000000,
    "last_error_message": "Wrong response from the webhook: 401 Unauthorized",
    "max_connections": 40,
    "allowed_updates": list(MESSAGE_KINDS),
}


@dataclass
class FakeBotApi:
    """Answers Bot API methods from `replies` (method -> (HTTP status, JSON body)) and records each request."""

    replies: dict[str, tuple[int, dict[str, Any]]]
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotApi]:
    fake = FakeBotApi({
        "setWebhook": (200, {"ok": True, "result": True, "description": "Webhook was set"}),
        "getWebhookInfo": (200, {"ok": True, "result": WEBHOOK_INFO}),
    })

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            fake.requests.append((self.path, body))
            method = self.path.rsplit("/", 1)[-1]
            not_found = (404, {"ok": False, "error_code": 404, "description": "Not Found"})
            status, reply = fake.replies.get(method, not_found)
            fake_platforms.FakeBotApi.reply_json(self, status, reply)

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("TELEGRAM_API_URL", fake.url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_registers_the_webhook_and_prints_what_telegram_sees(fake_api, capsys):
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 0
    assert fake_api.requests == [
        (f"/bot{BOT_TOKEN}/setWebhook", {
            "url": URL,
            "secret_token": SECRET,
            "allowed_updates": ["message", "edited_message", "channel_post", "edited_channel_post",
                                "business_message", "edited_business_message", "guest_message"],
            "drop_pending_updates": False,
        }),
        (f"/bot{BOT_TOKEN}/getWebhookInfo", {}),
    ]
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"webhook set: {URL} (updates: message, edited_message, ")
    assert lines[1:] == [
        "Telegram's view of the webhook (getWebhookInfo):",
        f"  url:                        {URL}",
        "  pending_update_count:       3",
        "  last_error:                 2025-11-24 16:00:00 UTC: Wrong response from the webhook: 401 Unauthorized",
        "  allowed_updates:            message, edited_message, channel_post, edited_channel_post, business_message, "
        "edited_business_message, guest_message",
    ]
    assert err == ""
    assert BOT_TOKEN not in out and SECRET not in out


def test_allowed_updates_are_exactly_what_the_etl_turns_into_rows():
    assert tuple(MESSAGE_KINDS) == telegram_api.ALLOWED_UPDATES


def test_telegram_refusal_exits_1_with_its_description_and_no_token(fake_api, capsys):
    fake_api.replies["setWebhook"] = (400, {"ok": False, "error_code": 400,
                                            "description": "Bad Request: bad webhook: Failed to resolve host"})
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 1
    out, err = capsys.readouterr()
    assert err == "error: Telegram refused setWebhook: Bad Request: bad webhook: Failed to resolve host (400)\n"
    assert out == ""
    assert [path for path, _ in fake_api.requests] == [f"/bot{BOT_TOKEN}/setWebhook"]  # no getWebhookInfo after it


def test_a_wrong_bot_token_is_reported_without_echoing_it(fake_api, capsys):
    fake_api.replies["setWebhook"] = (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 1
    out, err = capsys.readouterr()
    assert err == "error: Telegram refused setWebhook: Unauthorized (401)\n"
    assert BOT_TOKEN not in out + err


def test_unreachable_api_names_the_base_url_not_the_token(monkeypatch, capsys):
    monkeypatch.setenv("TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Bot API at http://127.0.0.1:")
    assert BOT_TOKEN not in err and "/bot" not in err


def test_webhook_info_naming_another_url_is_an_error(fake_api, capsys):
    fake_api.replies["getWebhookInfo"] = (200, {"ok": True, "result": {**WEBHOOK_INFO, "url": "https://old.example/x"}})
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 1
    assert capsys.readouterr().err == f"error: Telegram reports the webhook as https://old.example/x, not {URL}\n"


@pytest.mark.parametrize("env,message", [
    ({}, "TELEGRAM_BOT_TOKEN is not set: export the token @BotFather gave you"),
    ({"TELEGRAM_BOT_TOKEN": "not a token/../x"}, "TELEGRAM_BOT_TOKEN does not look like a bot token"),
    ({"TELEGRAM_BOT_TOKEN": BOT_TOKEN}, "TELEGRAM_SECRET_TOKEN is not set"),
    ({"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_SECRET_TOKEN": "has space"}, "TELEGRAM_SECRET_TOKEN must be 1-256"),
])
def test_missing_or_malformed_settings_exit_1_before_any_call(monkeypatch, capsys, env, message):
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9")  # never contacted: the settings fail first
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["set-telegram-webhook", "--url", URL]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert "not a token" not in err


@pytest.mark.parametrize("url,message", [
    ("http://abc.example/api/telegram", "Telegram only calls https:// webhook URLs"),
    ("https://abc.example/api/", "is not the /telegram route"),
    ("https://abc.example/api/whatsapp", "is not the /telegram route"),
])
def test_a_url_that_cannot_work_is_a_usage_error(capsys, url, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["set-telegram-webhook", "--url", url])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_bot_token_may_come_from_ssm():
    calls = []

    class FakeSSM:
        exceptions = type("E", (), {"ParameterNotFound": KeyError})

        def get_parameter(self, Name: str, WithDecryption: bool) -> dict:
            calls.append((Name, WithDecryption))
            return {"Parameter": {"Value": BOT_TOKEN}}

    s = settings.load({"TELEGRAM_BOT_TOKEN_PARAM": "/chatlake/dev/telegram-bot-token"}, ssm_client_factory=FakeSSM)
    assert telegram_api.bot_token(s) == BOT_TOKEN
    assert calls == [("/chatlake/dev/telegram-bot-token", True)]


def test_a_local_dotenv_secret_never_shadows_the_stage_parameter(fake_api, monkeypatch, tmp_path, capsys):
    """`make run` writes TELEGRAM_SECRET_TOKEN to .env; the stage's _PARAM exported in the shell still wins."""
    import boto3
    from moto import mock_aws

    (tmp_path / ".env").write_text("TELEGRAM_SECRET_TOKEN=local_only_secret\n")  # the test runs in tmp_path
    monkeypatch.delenv("TELEGRAM_SECRET_TOKEN")
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN_PARAM", "/chatlake/dev/telegram-secret-token")
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="/chatlake/dev/telegram-secret-token", Value=SECRET,
                                          Type="SecureString")
        assert cli.main(["set-telegram-webhook", "--url", URL]) == 0
    assert fake_api.requests[0][1]["secret_token"] == SECRET
    assert "local_only_secret" not in capsys.readouterr().out


def test_describe_webhook_without_webhook_or_errors():
    assert telegram_api.describe_webhook({"url": "", "pending_update_count": 0}) == [
        "url:                        (none: no webhook is set)",
        "pending_update_count:       0",
        "last_error:                 none",
        "allowed_updates:            (all except chat_member, message_reaction*)",
    ]
