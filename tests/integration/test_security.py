"""Security: constant-time checks, the Telegram secret's alphabet enforced at start-up, and no secret in any log
line, response, stored object or quarantine note, whatever the outcome of a request.

The random-request version of the log/response checks runs in tests/unit/test_fuzz.py and the one under load in
tests/e2e/test_load.py; here every outcome is provoked on purpose, on both backends.
"""

from __future__ import annotations

import ast
import hmac
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app
from chalicelib import runtime, webhook
from chalicelib import settings as settings_module
from chalicelib.settings import TELEGRAM_SECRET_RE, ConfigError
from chalicelib.storage import FolderStorage, S3Storage, Storage
from chatlake.local import stack, synthetic
from tests.conftest import SECRETS, keys, record_figure

SAMPLES = synthetic.samples(1_795_000_000)


def sign(body: bytes) -> str:
    return webhook.whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body)


# --- constant-time comparison -----------------------------------------------------------------------------------------

def test_every_credential_check_goes_through_hmac_compare_digest(
        secrets_env: dict[str, str], lake: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decision (Telegram token, WhatsApp signature, verify token; right and wrong) is one compare_digest
    call on the bytes received and the bytes expected, and its answer is the decision."""
    calls: list[tuple[bytes, bytes, bool]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        result = real(a, b)
        calls.append((a, b, result))
        return result

    monkeypatch.setattr(webhook.hmac, "compare_digest", recording)
    client = Client(app, stage_name="local")
    token, verify = SECRETS["TELEGRAM_SECRET_TOKEN"], SECRETS["WHATSAPP_VERIFY_TOKEN"]
    body = SAMPLES["whatsapp"]
    cases = [
        (lambda: client.http.post("/telegram", headers={"X-Telegram-Bot-Api-Secret-Token": token},
                                  body=SAMPLES["telegram"]), 200, token.encode(), token.encode()),
        (lambda: client.http.post("/telegram", headers={"X-Telegram-Bot-Api-Secret-Token": token[:-1] + "X"},
                                  body=SAMPLES["telegram"]), 401, (token[:-1] + "X").encode(), token.encode()),
        (lambda: client.http.post("/telegram", body=SAMPLES["telegram"]), 401, b"", token.encode()),
        (lambda: client.http.post("/whatsapp", headers={"X-Hub-Signature-256": sign(body)}, body=body), 200,
         sign(body).encode(), sign(body).encode()),
        (lambda: client.http.post("/whatsapp", headers={"X-Hub-Signature-256": sign(body + b"x")}, body=body), 401,
         sign(body + b"x").encode(), sign(body).encode()),
        (lambda: client.http.get(f"/whatsapp?hub.mode=subscribe&hub.challenge=7&hub.verify_token={verify}"), 200,
         verify.encode(), verify.encode()),
        (lambda: client.http.get("/whatsapp?hub.mode=subscribe&hub.challenge=7&hub.verify_token=nope"), 403,
         b"nope", verify.encode()),
    ]
    for request, status, received, expected in cases:
        calls.clear()
        assert request().status_code == status
        assert calls == [(received, expected, status == 200)]


def test_no_credential_is_compared_with_eq() -> None:
    """A static check of webhook.py: no `==`/`!=`/`in` on anything named like a secret, token or signature
    (those leak through timing); the only comparison of secrets is `_same`, i.e. compare_digest."""
    tree = ast.parse(Path(webhook.__file__).read_text())
    secretish = re.compile(r"secret|token|signature|expected|verify|digest", re.I)
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn)
                                                 for op in node.ops):
            names = {n.id for side in (node.left, *node.comparators) for n in ast.walk(side) if isinstance(n, ast.Name)}
            names |= {n.attr for side in (node.left, *node.comparators) for n in ast.walk(side)
                      if isinstance(n, ast.Attribute)}
            if any(secretish.search(name) for name in names):
                offenders.append(ast.unparse(node))
    assert offenders == []
    same = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_same")
    assert "compare_digest" in ast.unparse(same)


# --- the Telegram secret's alphabet -------------------------------------------------------------------------------

def test_the_telegram_secret_alphabet_is_enforced_exactly() -> None:
    """Any string: accepted iff it is 1-256 of A-Z a-z 0-9 _ -; a refusal never repeats the value."""
    cases = 0
    alphabet = st.sampled_from("ABCXYZabcxyz0189_-")

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(st.text(alphabet, min_size=1, max_size=260) | st.text(max_size=40)
           | st.builds(lambda a, odd, b: a + odd + b, st.text(alphabet, min_size=1, max_size=20),
                       st.sampled_from(list(" \t\n=+/.:é\u00a0\u200b\ud800\x00")), st.text(alphabet, max_size=20)))
    def run(token: str) -> None:
        nonlocal cases
        cases += 1
        valid = 1 <= len(token) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in token)
        s = settings_module.Settings({"TELEGRAM_SECRET_TOKEN": token})
        if valid:
            assert s.telegram_secret_token() == token
            assert TELEGRAM_SECRET_RE.fullmatch(token)
        else:
            with pytest.raises(ConfigError) as refused:
                s.telegram_secret_token()
            assert token.strip() == "" or token not in str(refused.value)

    run()
    record_figure("fuzz TELEGRAM_SECRET_TOKEN alphabet", f"{cases} cases (derandomized): accepted iff "
                                                         "[A-Za-z0-9_-]{1,256}")


@pytest.mark.parametrize("token", ["Zq9 has space", "Zq9" * 86, "Zq9ö", "Zq9\n", "Zq9=", "Zq9/+", "\u200bZq9", "Zq9.0"])
def test_the_local_stack_refuses_to_start_with_a_malformed_telegram_secret(
        token: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`make run` (serve) exits 2 before starting anything, and says why without printing the value."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # all set: serve writes no .env
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", token)

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(stack.subprocess, "Popen", started)
    monkeypatch.setattr(stack, "ensure_dotenv", lambda path: [])
    assert stack.serve("127.0.0.1", 0) == 2
    err = capsys.readouterr().err
    assert "TELEGRAM_SECRET_TOKEN must be 1-256 characters" in err and token.strip() not in err


# --- no secret anywhere -------------------------------------------------------------------------------------------

PLATFORM_HEADERS = {  # what the platforms send besides the credential, and headers a proxy may add
    "User-Agent": "facebookexternalua", "Content-Type": "application/json", "Accept": "*/*",
    "X-Forwarded-For": "203.0.113.9", "Cookie": "session=canary-cookie", "Authorization": "Bearer canary-bearer",
}


def _everything_said(caplog: pytest.LogCaptureFixture, replies: list[Any], storage: Storage) -> str:
    text = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    text += [r.body.decode("utf-8", "replace") + json.dumps(dict(r.headers)) for r in replies]
    text += [storage.get(k).decode("utf-8", "replace") for k in keys(storage) if not k.startswith("raw/")]
    return "\n".join(text)


def test_no_secret_in_logs_responses_or_quarantine_whatever_the_outcome(
        secrets_env: dict[str, str], lake: Storage, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Every outcome on both backends (200, retry, 400 + quarantine, 401, 413, handshake 200/403, 503 for an
    unset secret and for a lake that cannot be written): logs, responses and non-raw objects hold no secret and
    no valid signature, and the headers logged are only the allow-listed ones."""
    caplog.set_level(logging.DEBUG)
    client = Client(app, stage_name="local")
    wa, tg = SAMPLES["whatsapp"], SAMPLES["telegram"]
    token = SECRETS["TELEGRAM_SECRET_TOKEN"]
    sha1 = "sha1=" + hmac.new(SECRETS["WHATSAPP_APP_SECRET"].encode(), wa, "sha1").hexdigest()
    wa_headers = {**PLATFORM_HEADERS, "X-Hub-Signature-256": sign(wa), "X-Hub-Signature": sha1}
    tg_headers = {**PLATFORM_HEADERS, "X-Telegram-Bot-Api-Secret-Token": token}
    replies = [
        client.http.post("/whatsapp", headers=wa_headers, body=wa),
        client.http.post("/whatsapp", headers=wa_headers, body=wa),  # a retry
        client.http.post("/telegram", headers=tg_headers, body=tg),
        client.http.post("/telegram", headers=tg_headers, body=b"\xff\xfe not json"),
        client.http.post("/whatsapp", headers={**wa_headers, "X-Hub-Signature-256": sign(b"[1]")}, body=b"[1]"),
        client.http.post("/telegram", headers={**tg_headers, "X-Telegram-Bot-Api-Secret-Token": token + "0"}, body=tg),
        client.http.post("/whatsapp", headers={**wa_headers, "X-Hub-Signature-256": sign(wa)[:-2]}, body=wa),
        client.http.post("/telegram", headers=tg_headers, body=b"{" + b" " * webhook.MAX_BODY_BYTES + b"}"),
        client.http.get(f"/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token="
                        f"{SECRETS['WHATSAPP_VERIFY_TOKEN']}"),
        client.http.get("/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token=guess"),
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 400, 400, 401, 401, 413, 200, 403]
    with monkeypatch.context() as m:
        m.delenv("WHATSAPP_APP_SECRET")
        replies.append(client.http.post("/whatsapp", headers=wa_headers, body=wa))
    if isinstance(lake, S3Storage):
        broken: Storage = S3Storage("no-such-bucket", client=lake.client)
    else:
        (tmp_path / "a-file").write_text("where the lake folder should be")
        broken = FolderStorage(tmp_path / "a-file")
    runtime.use_storage(runtime.settings().datalake_url, broken)
    replies.append(client.http.post("/telegram", headers=tg_headers, body=b'{"update_id": 99}'))
    runtime.use_storage(runtime.settings().datalake_url, lake)
    assert [r.status_code for r in replies[-2:]] == [503, 503]

    said = _everything_said(caplog, replies, lake)
    assert "facebookexternalua" in said  # allow-listed headers are logged...
    for secret in (*SECRETS.values(), sign(wa), sha1, "canary-cookie", "canary-bearer", "203.0.113.9"):
        assert secret not in said  # ...nothing else from the request headers, and no secret at all
    logged = [arg for r in caplog.records if r.name.startswith("chatlake")
              for arg in (r.args if isinstance(r.args, tuple) else ()) if isinstance(arg, dict)]
    assert logged and all(set(d) <= set(webhook.LOGGED_HEADERS) for d in logged)
    for key in keys(lake, "quarantine/"):
        if key.endswith(".json"):
            assert set(json.loads(lake.get(key))) == {"reason", "received_at", "content_type"}


def test_the_allow_list_names_no_credential_header() -> None:
    assert webhook.LOGGED_HEADERS == ("content-type", "content-length", "user-agent")
    assert not any(re.search(r"secret|signature|token|auth|cookie|key", h) for h in webhook.LOGGED_HEADERS)


def test_settings_never_show_their_values(secrets_env: dict[str, str], tmp_path: Path) -> None:
    """The settings object holds every secret: printing it (an error message, a debugger, a log line) must not."""
    (tmp_path / ".env").write_text("PII_SALT=salt-from-dotenv-1234\n")
    s = settings_module.load(dotenv_path=str(tmp_path / ".env"))
    assert s.get("PII_SALT") == "salt-from-dotenv-1234"
    for text in (repr(s), str(s), f"{s!r}"):
        for secret in (*SECRETS.values(), "salt-from-dotenv-1234"):
            assert secret not in text
