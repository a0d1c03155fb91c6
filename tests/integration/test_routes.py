"""The webhook routes through chalice.test.Client, on both storage backends."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from chalice.test import Client

from app import app
from chalicelib import layout as lake_layout
from chalicelib.storage import S3Storage
from chalicelib.webhook import MAX_BODY_BYTES, whatsapp_signature
from chatlake.local.synthetic import samples
from tests.conftest import PAYLOADS, PROJECT_DIR, SECRETS, keys

TODAY = lambda: datetime.now(UTC).date()  # noqa: E731
CORPUS = sorted(p for source in lake_layout.SOURCES for p in (PAYLOADS / source).glob("*.json"))  # webhook sources


@pytest.fixture
def client():
    with Client(app, stage_name="local") as c:
        yield c


def post_telegram(client, body: bytes, token: str | None = SECRETS["TELEGRAM_SECRET_TOKEN"], **headers):
    headers = {"Content-Type": "application/json", **headers}
    if token is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = token
    return client.http.post("/telegram", headers=headers, body=body)


def post_whatsapp(client, body: bytes, signature: str | None = None, **headers):
    headers = {"Content-Type": "application/json", **headers}
    sig = whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body) if signature is None else signature
    if sig:
        headers["X-Hub-Signature-256"] = sig
    return client.http.post("/whatsapp", headers=headers, body=body)


def post(client, source: str, body: bytes, **headers):
    return (post_telegram if source == "telegram" else post_whatsapp)(client, body, **headers)


SAMPLES = samples(1_795_000_000)


def test_health(client):
    r = client.http.get("/health")
    assert r.status_code == 200 and r.json_body == {"ok": True}


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_delivery_is_stored_byte_for_byte(client, lake, secrets_env, source):
    body = SAMPLES[source]
    r = post(client, source, body)
    assert r.status_code == 200, r.body
    key = r.json_body["key"]
    assert r.json_body == {"ok": True, "key": key}
    assert key == f"raw/source={source}/dt={TODAY().isoformat()}/{lake_layout.digest(body)}.json"
    assert lake.get(key) == body
    assert keys(lake) == [key]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_corpus_bodies_are_stored_exactly(client, lake, secrets_env, path):
    """Every documented payload, with its exact bytes (non-ASCII escaped as the platforms send it)."""
    body = path.read_bytes()
    r = post(client, path.parent.name, body)
    assert r.status_code == 200, r.body
    assert lake.get(r.json_body["key"]) == body


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_retry_of_the_same_delivery_is_stored_once(client, lake, secrets_env, source):
    first = post(client, source, SAMPLES[source])
    before = next(iter(lake.list("raw/")))
    second = post(client, source, SAMPLES[source])
    assert first.status_code == second.status_code == 200
    assert first.json_body["key"] == second.json_body["key"]
    assert list(lake.list("raw/")) == [before]  # not even rewritten


def test_non_ascii_raw_utf8_body_is_kept_exactly(client, lake, secrets_env):
    body = '{"update_id":7,"message":{"text":"héllo 👋"}}'.encode()
    r = post_telegram(client, body)
    assert r.status_code == 200 and lake.get(r.json_body["key"]) == body


@pytest.mark.parametrize("token", [None, "", "wrong", SECRETS["TELEGRAM_SECRET_TOKEN"] + "x", "tg-Secret_012345678é"])
def test_telegram_wrong_token_is_401_and_nothing_stored(client, lake, secrets_env, token):
    r = post_telegram(client, SAMPLES["telegram"], token=token)
    assert r.status_code == 401
    assert r.json_body["ok"] is False and "X-Telegram-Bot-Api-Secret-Token" in r.json_body["error"]
    assert keys(lake) == []


@pytest.mark.parametrize("kind", ["missing", "empty", "other-body", "other-secret", "no-prefix", "garbage"])
def test_whatsapp_bad_signature_is_401_and_nothing_stored(client, lake, secrets_env, kind):
    body = SAMPLES["whatsapp"]
    signature = {
        "missing": "",
        "empty": "sha256=",
        "other-body": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body + b" "),
        "other-secret": whatsapp_signature("not-the-secret", body),
        "no-prefix": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body).removeprefix("sha256="),
        "garbage": "sha256=zz\u00e9",
    }[kind]
    r = post_whatsapp(client, body, signature=signature)
    assert r.status_code == 401 and "X-Hub-Signature-256" in r.json_body["error"]
    assert keys(lake) == []


def test_whatsapp_signature_hex_case_does_not_matter(client, lake, secrets_env):
    body = SAMPLES["whatsapp"]
    r = post_whatsapp(client, body, signature=whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body).upper()
                      .replace("SHA256=", "sha256="))
    assert r.status_code == 200


@pytest.mark.parametrize("source,name", [("telegram", "TELEGRAM_SECRET_TOKEN"), ("whatsapp", "WHATSAPP_APP_SECRET")])
def test_unset_secret_fails_closed(client, lake, secrets_env, monkeypatch, source, name):
    monkeypatch.delenv(name)
    r = post(client, source, SAMPLES[source])
    assert r.status_code == 503 and r.json_body["error"] == f"{name} is not set"
    assert keys(lake) == []


def test_malformed_telegram_secret_setting_fails_closed(client, lake, secrets_env, monkeypatch):
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "has spaces and é")
    r = post_telegram(client, SAMPLES["telegram"], token="has spaces and é")
    assert r.status_code == 503 and "A-Z, a-z, 0-9" in r.json_body["error"]
    assert keys(lake) == []


UNREADABLE = {
    "empty": (b"", "empty body"),
    "not-utf8": (b'{"text":"\xff\xfe"}', "not UTF-8"),
    "not-json": (b"update_id=1&message=hi", "not JSON"),
    "truncated-json": (b'{"update_id":1,"message":{"text":"hi"', "not JSON"),
    "json-array": (b'[{"update_id":1}]', "not an object (a list)"),
    "json-string": (b'"hello"', "not an object (a str)"),
    "json-null": (b"null", "not an object (a NoneType)"),
    "too-deep": (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
}


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_body_is_400_and_quarantined(client, lake, secrets_env, source, case):
    body, reason = UNREADABLE[case]
    r = post(client, source, body, **{"Content-Type": "text/plain; charset=latin-1"})
    assert r.status_code == 400, r.body
    assert reason in r.json_body["error"]
    body_key, note_key = lake_layout.quarantine_keys(source, TODAY(), body)
    assert keys(lake) == sorted([body_key, note_key])
    assert lake.get(body_key) == body
    note = json.loads(lake.get(note_key))
    assert set(note) == {"reason", "received_at", "content_type"}
    assert reason in note["reason"] and note["content_type"] == "text/plain; charset=latin-1"
    assert datetime.fromisoformat(note["received_at"]).date() == TODAY()
    assert not any(secret in json.dumps(note) for secret in SECRETS.values())


@pytest.mark.parametrize("source", ["telegram", "whatsapp"])
def test_body_over_10_mib_is_413_and_nothing_stored(client, lake, secrets_env, source):
    body = b'{"pad":"' + b"x" * MAX_BODY_BYTES + b'"}'
    r = post(client, source, body)
    assert r.status_code == 413
    assert keys(lake) == []
    exactly = b'{"p":"' + b"x" * (MAX_BODY_BYTES - 8) + b'"}'
    assert len(exactly) == MAX_BODY_BYTES and post(client, source, exactly).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "text/plain",
                                          "application/x-www-form-urlencoded", "application/octet-stream"])
def test_any_content_type_is_accepted(client, lake, secrets_env, content_type):
    r = post_whatsapp(client, SAMPLES["whatsapp"], **{"Content-Type": content_type})
    assert r.status_code == 200


def test_any_authenticated_json_object_is_stored(client, lake, secrets_env):
    for body in (b"{}", b'{"object":"page","entry":[]}', b'{"update_id":"not-a-number"}'):
        assert post_telegram(client, body).status_code == 200
    assert len(keys(lake, "raw/source=telegram/")) == 3


def test_whatsapp_handshake(client, secrets_env):
    token = SECRETS["WHATSAPP_VERIFY_TOKEN"]
    r = client.http.get(f"/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}")
    assert r.status_code == 200 and r.body == b"1158201444"
    assert r.headers["Content-Type"].startswith("text/plain")
    for query in (f"hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={token}",
                  "hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong",
                  "hub.mode=subscribe&hub.challenge=1", ""):
        assert client.http.get(f"/whatsapp?{query}".rstrip("?")).status_code == 403


def test_whatsapp_handshake_fails_closed_without_verify_token(client):
    r = client.http.get("/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=")
    assert r.status_code == 503 and "WHATSAPP_VERIFY_TOKEN is not set" in r.body.decode()


def test_storage_failure_is_5xx_and_a_retry_stores_once(client, s3, secrets_env, monkeypatch):
    """The bucket is missing at first (nothing stored, 503 so the platform retries), then it exists."""
    from chalicelib import runtime

    monkeypatch.setenv("DATALAKE_URL", "s3://chatlake-late/lake")
    runtime.use_storage("s3://chatlake-late/lake", storage := S3Storage("chatlake-late", "lake", client=s3))
    for source in ("telegram", "whatsapp"):
        r = post(client, source, SAMPLES[source])
        assert r.status_code == 503 and "retry" in r.json_body["error"]
    s3.create_bucket(Bucket="chatlake-late")
    assert keys(storage) == []
    for _ in range(2):
        for source in ("telegram", "whatsapp"):
            assert post(client, source, SAMPLES[source]).status_code == 200
    assert len(keys(storage)) == 2


def test_storage_failure_while_quarantining_is_5xx(client, tmp_path, secrets_env, monkeypatch):
    (tmp_path / "lake").write_text("a file where the lake folder should be")
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    assert post_telegram(client, b"not json").status_code == 503
    assert post_telegram(client, SAMPLES["telegram"]).status_code == 503


def test_secrets_never_logged_or_returned(client, lake, secrets_env, caplog):
    caplog.set_level(logging.DEBUG)
    headers = {"User-Agent": "TelegramBot (like TwitterBot)"}
    bodies = [post_telegram(client, SAMPLES["telegram"], **headers), post_telegram(client, b"[]", **headers),
              post_telegram(client, SAMPLES["telegram"], token="wrong"), post_whatsapp(client, SAMPLES["whatsapp"]),
              post_whatsapp(client, SAMPLES["whatsapp"], signature="sha256=00")]
    seen = caplog.text + "".join(r.body.decode() for r in bodies)
    assert "TelegramBot" in caplog.text  # the allow-listed headers are logged...
    for secret in SECRETS.values():
        assert secret not in seen  # ...the secrets never are
    assert whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], SAMPLES["whatsapp"]) not in seen


def test_importing_app_loads_no_heavy_module():
    code = ("import sys, app; heavy = [m for m in ('pyarrow', 'duckdb', 'sqlglot', 'pandas', 'boto3', 'rich')"
            " if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
