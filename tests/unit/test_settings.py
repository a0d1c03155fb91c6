"""Settings: environment first, then `.env`; secrets from SSM once per process; clear errors."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from chalicelib import settings
from chalicelib.settings import ConfigError


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("WHATSAPP_APP_SECRET=from-file\nTELEGRAM_SECRET_TOKEN=file_token\nUNRELATED=x\n")
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "from-env")
    s = settings.load()
    assert s.get("WHATSAPP_APP_SECRET") == "from-env"
    assert s.get("TELEGRAM_SECRET_TOKEN") == "file_token"


def test_defaults():
    s = settings.load()
    assert s.datalake_url == "./datalake" and s.athena_database == "chatlake"
    assert s.get("TELEGRAM_SECRET_TOKEN") is None and s.pii_salt() is None
    with pytest.raises(ConfigError, match="TELEGRAM_SECRET_TOKEN is not set"):
        s.require("TELEGRAM_SECRET_TOKEN")


def test_pii_mode():
    assert settings.load({"PII_MODE": "hash", "PII_SALT": "pepper"}).pii_salt() == "pepper"
    with pytest.raises(ConfigError, match="PII_MODE=hash needs PII_SALT"):
        settings.load({"PII_MODE": "hash"}).pii_salt()
    with pytest.raises(ConfigError, match="'keep' or 'hash'"):
        settings.load({"PII_MODE": "mask"}).pii_salt()


@pytest.mark.parametrize("token,ok", [("abc_DEF-123", True), ("x" * 256, True), ("x" * 257, False),
                                      ("with space", False), ("ümlaut", False), ("a:b", False)])
def test_telegram_secret_alphabet(token, ok):
    s = settings.load({"TELEGRAM_SECRET_TOKEN": token})
    if ok:
        assert s.telegram_secret_token() == token
    else:
        with pytest.raises(ConfigError, match="1-256 characters"):
            s.telegram_secret_token()


class CountingSSM:
    def __init__(self, client):
        self.client, self.calls = client, 0
        self.exceptions = client.exceptions

    def get_parameter(self, **kwargs):
        self.calls += 1
        return self.client.get_parameter(**kwargs)


def test_secrets_from_ssm_are_read_once_per_process():
    with mock_aws():
        ssm = CountingSSM(boto3.client("ssm", region_name="us-east-1"))
        ssm.client.put_parameter(Name="/chatlake/dev/app-secret", Value="s3cr3t", Type="SecureString")
        env = {"WHATSAPP_APP_SECRET_PARAM": "/chatlake/dev/app-secret"}
        for _ in range(3):  # three requests in one warm Lambda
            s = settings.load(env, ssm_client_factory=lambda: ssm)
            assert s.require("WHATSAPP_APP_SECRET") == "s3cr3t"
        assert ssm.calls == 1
        # a plain value still wins over the parameter (local use)
        assert settings.load({**env, "WHATSAPP_APP_SECRET": "plain"}).get("WHATSAPP_APP_SECRET") == "plain"
        settings.reset()  # as a new cold start
        assert settings.load(env, ssm_client_factory=lambda: ssm).require("WHATSAPP_APP_SECRET") == "s3cr3t"
        assert ssm.calls == 2


def test_dotenv_is_read_once_until_reset(tmp_path):
    (tmp_path / ".env").write_text("RETRY_WINDOW_DAYS=3\n")
    assert settings.load({}).retry_window_days == 3
    (tmp_path / ".env").write_text("RETRY_WINDOW_DAYS=5\n")
    assert settings.load({}).retry_window_days == 3  # cached for the process
    settings.reset()
    assert settings.load({}).retry_window_days == 5


def test_missing_ssm_parameter_says_what_to_do():
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        s = settings.load({"TELEGRAM_SECRET_TOKEN_PARAM": "/chatlake/dev/nope"}, ssm_client_factory=lambda: client)
        with pytest.raises(ConfigError, match=r"'/chatlake/dev/nope' does not exist.*put-parameter"):
            s.get("TELEGRAM_SECRET_TOKEN")


def test_non_secret_settings_are_never_looked_up_in_ssm():
    s = settings.load({"DATALAKE_URL_PARAM": "/x"}, ssm_client_factory=lambda: pytest.fail("SSM was called"))
    assert s.datalake_url == "./datalake"


def test_a_parameter_in_the_environment_wins_over_a_plain_value_in_dotenv(tmp_path):
    """`make run` writes local secrets to `.env`; a deployed stage's `NAME_PARAM` exported in the shell
    must still be the one used (e.g. by set-telegram-webhook)."""
    (tmp_path / ".env").write_text("TELEGRAM_SECRET_TOKEN=local_secret\n")
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        client.put_parameter(Name="/chatlake/dev/telegram-secret-token", Value="deployed_secret", Type="SecureString")
        s = settings.load({"TELEGRAM_SECRET_TOKEN_PARAM": "/chatlake/dev/telegram-secret-token"},
                          ssm_client_factory=lambda: client)
        assert s.get("TELEGRAM_SECRET_TOKEN") == "deployed_secret"
        assert settings.load({}).get("TELEGRAM_SECRET_TOKEN") == "local_secret"
