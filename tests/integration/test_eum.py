"""WhatsApp through AWS End User Messaging Social: the SNS function (chalice.test.Client, both backends), the ETL
over raw/source=whatsapp_eum, one row per message whichever door it came through, and `chatlake ingest-sns`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from types import ModuleType

import pytest
from chalice.test import Client

from chalicelib import etl, eum, layout, runtime, whatsapp
from chalicelib.storage import FolderStorage, StorageError
from chatlake import cli, ingest_sns, status
from tests.conftest import PAYLOADS, PROJECT_DIR, keys
from tests.integration.test_etl import message_keys, status_keys, table

EUM = PAYLOADS / "whatsapp_eum"
WA = PAYLOADS / "whatsapp"
DAY = date(2026, 11, 24)
TODAY = lambda: datetime.now(UTC).date()  # noqa: E731
BAD = {"entry_not_string", "entry_not_json", "entry_not_object", "entry_missing"}
# Each event's entry is that of this WhatsApp corpus file (tests/payloads/whatsapp_eum/README.md).
SAME_AS = {"text": "text", "image": "image_caption", "status_sent": "status_sent",
           "status_delivered": "status_delivered", "status_read": "status_read", "status_failed": "status_failed",
           "echoes": "smb_message_echoes", "no_message_id": "audio_voice"}


def event_text(name: str) -> str:
    return (EUM / f"{name}.json").read_text()


def load_app(monkeypatch: pytest.MonkeyPatch, topic: str | None) -> ModuleType:
    """app.py imported afresh with the stage's WHATSAPP_EUM_TOPIC, as chalice loads it (not the shared `app`)."""
    if topic:
        monkeypatch.setenv("WHATSAPP_EUM_TOPIC", topic)
    spec = importlib.util.spec_from_file_location("app_eum_under_test", PROJECT_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the SNS function -----------------------------------------------------------------------------------------------


def test_the_function_exists_only_when_the_stage_names_a_topic(monkeypatch):
    assert not hasattr(load_app(monkeypatch, None), "whatsapp_eum")
    assert hasattr(load_app(monkeypatch, "chatlake-whatsapp-events"), "whatsapp_eum")


@pytest.mark.parametrize("name", sorted(p.stem for p in EUM.glob("*.json")))
def test_the_function_stores_the_sns_message_exactly_once(monkeypatch, lake, name):
    app = load_app(monkeypatch, "chatlake-whatsapp-events").app
    message = event_text(name)
    with Client(app, stage_name="dev") as client:
        event = client.events.generate_sns_event(message=message)
        first = client.lambda_.invoke("whatsapp_eum", event).payload
        again = client.lambda_.invoke("whatsapp_eum", event).payload  # an SNS retry
    key = layout.raw_key("whatsapp_eum", TODAY(), message.encode())
    assert first == {"key": key, "stored": True} and again == {"key": key, "stored": False}
    assert keys(lake) == [key] and lake.get(key) == (EUM / f"{name}.json").read_bytes()


class BrokenStorage(FolderStorage):
    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        raise StorageError("cannot write: disk full")


def test_a_storage_failure_fails_the_invocation_so_lambda_and_sns_retry(monkeypatch, tmp_path):
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    runtime.use_storage(str(tmp_path / "lake"), BrokenStorage(tmp_path / "lake"))
    app = load_app(monkeypatch, "arn:aws:sns:us-east-1:123456789012:t").app
    with Client(app, stage_name="dev") as client, pytest.raises(StorageError, match="disk full"):
        client.lambda_.invoke("whatsapp_eum", client.events.generate_sns_event(message=event_text("text")))


# --- the ETL ---------------------------------------------------------------------------------------------------------


def webhook_body(entry: dict) -> dict:
    return {"object": whatsapp.OBJECT, "entry": [entry]}


def wrap(entry_text: str) -> dict:
    return {"context": {}, "whatsAppWebhookEntry": entry_text, "aws_account_id": "123456789012",
            "message_timestamp": "2025-01-08T23:30:43.271279391Z"}


@pytest.mark.parametrize("path", sorted(WA.glob("*.json")), ids=lambda p: p.stem)
def test_every_webhook_entry_gives_the_same_rows_by_the_other_door(path):
    """Each entry of the WhatsApp corpus, as End User Messaging Social would publish it: the rows, statuses and
    problems the webhook delivery of that one entry gives, with the event's raw key."""
    body = json.loads(path.read_bytes())
    for entry in body.get("entry") if isinstance(body.get("entry"), list) else []:
        key = layout.raw_key("whatsapp_eum", DAY, b"x")
        assert eum.parse(wrap(json.dumps(entry)), key) == whatsapp.parse(webhook_body(entry), key)


def test_the_corpus_through_the_etl(lake):
    names = {}
    for path in sorted(EUM.glob("*.json")):
        key = layout.raw_key("whatsapp_eum", DAY, path.read_bytes())
        lake.put(key, path.read_bytes())
        names[key] = path.stem
    result = etl.run_day(lake, DAY)
    assert result.deliveries == len(names) == 13
    rejects = {names[r["raw_key"]]: r for r in table(lake, "rejects").to_pylist()}
    assert set(rejects) == BAD and all(r["source"] == "whatsapp_eum" for r in rejects.values())
    reasons = {n: r["reason"] for n, r in rejects.items()}
    assert "is a JSON object, not the string the service sends" in reasons["entry_not_string"]
    assert "'whatsAppWebhookEntry' is not JSON" in reasons["entry_not_json"]
    assert "JSON but not an object (a JSON array)" in reasons["entry_not_object"]
    assert "has no 'whatsAppWebhookEntry'" in reasons["entry_missing"]

    messages = table(lake, "messages").to_pylist()
    assert {m["source"] for m in messages} == {"whatsapp"}
    assert {names[m["raw_key"]] for m in messages} == {"text", "image", "several_messages", "echoes", "no_message_id"}
    # several_messages repeats text's message (the same wamid): one row of it, the first raw key's
    assert result.duplicates == 1 and len(messages) == len(message_keys(table(lake, "messages"))) == 8
    several = json.loads(json.loads(event_text("several_messages"))["whatsAppWebhookEntry"])
    ids = [m["id"] for m in several["changes"][0]["value"]["messages"]]
    by_id = {m["message_id"]: m for m in messages}
    assert [(by_id[i]["sender_name"], by_id[i]["message_type"]) for i in ids] == [
        ("Zoë Núñez 🌻", "text"), ("Kwame Mensah", "text"), ("Zoë Núñez 🌻", "reaction")]
    echoes = [m for m in messages if names[m["raw_key"]] == "echoes"]
    assert len(echoes) == 3 and {m["direction"] for m in echoes} == {"out"}
    [image] = [m for m in messages if names[m["raw_key"]] == "image"]
    assert image["media_id"] and image["media_mime_type"] == "image/jpeg"
    statuses = table(lake, "statuses").to_pylist()
    assert sorted(s["status"] for s in statuses) == ["delivered", "failed", "read", "sent"]
    [failed] = [s for s in statuses if s["status"] == "failed"]
    assert failed["error_code"] == 131047 and names[failed["raw_key"]] == "status_failed"


def rows_of(storage, day: date) -> tuple[set, set]:
    return message_keys(table(storage, "messages", day)), status_keys(table(storage, "statuses", day))


def test_the_same_day_by_both_doors_is_one_row_kept_from_the_webhook(lake):
    for name in SAME_AS:
        lake.put(layout.raw_key("whatsapp_eum", DAY, (EUM / f"{name}.json").read_bytes()),
                 (EUM / f"{name}.json").read_bytes())
        body = (WA / f"{SAME_AS[name]}.json").read_bytes()
        lake.put(layout.raw_key("whatsapp", DAY, body), body)
    result = etl.run_day(lake, DAY)
    messages = table(lake, "messages").to_pylist()
    assert result.messages == len(messages) == len(message_keys(table(lake, "messages"))) == 1 + 1 + 3 + 1
    assert result.statuses == 4 and result.duplicates == 6 + 4
    assert {layout.source_of(m["raw_key"]) for m in messages} == {"whatsapp"}  # the first raw key in key order


@pytest.mark.parametrize("first", ["whatsapp", "whatsapp_eum"])
def test_across_days_by_both_doors_the_later_copy_gives_no_row(lake, first):
    later = "whatsapp_eum" if first == "whatsapp" else "whatsapp"
    for source, day in ((first, DAY - timedelta(days=2)), (later, DAY)):
        for name, wa_name in SAME_AS.items():
            body = (EUM / f"{name}.json" if source == "whatsapp_eum" else WA / f"{wa_name}.json").read_bytes()
            lake.put(layout.raw_key(source, day, body), body)
    earlier = etl.run_day(lake, DAY - timedelta(days=2))
    result = etl.run_day(lake, DAY)
    assert (earlier.messages, earlier.statuses) == (6, 4)
    assert (result.messages, result.statuses, result.duplicates) == (0, 0, 10)
    assert rows_of(lake, DAY) == (set(), set())


def test_status_counts_the_sns_events_and_sees_the_day_behind(lake):
    lake.put(layout.raw_key("whatsapp_eum", DAY, b"{}"), b"{}")
    day = status.day_status(lake, DAY)
    assert day.raw == {"telegram": 0, "whatsapp": 0, "whatsapp_eum": 1} and day.behind


def test_source_of_reads_the_new_partition():
    assert layout.source_of(layout.raw_key("whatsapp_eum", DAY, b"{}")) == "whatsapp_eum"


def test_the_phone_number_get_whatsapp_message_media_needs():
    event = json.loads(event_text("image"))
    assert eum.phone_numbers(event) == [
        eum.PhoneNumber("106540352242922", "phone-number-id-9c8d7e6f5a4b43c2b1a0f9e8d7c6b5a4")]
    assert eum.phone_numbers({"context": {"MetaPhoneNumberIds": [{"arn": 1}, "x"]}}) == []
    assert eum.phone_numbers({}) == []


# --- chatlake ingest-sns ---------------------------------------------------------------------------------------------


def notification(message: str) -> dict:
    return {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:chatlake-whatsapp-events", "Message": message,
            "Timestamp": "2025-02-12T00:43:44.620Z", "SignatureVersion": "1", "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}


def lambda_record(message: str) -> dict:
    return {"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:1:t:x",
            "Sns": {**notification(message), "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/c.pem"}}


SHAPES = {
    "bare message": lambda m: m,
    "Lambda SNS event": lambda m: json.dumps({"Records": [lambda_record(m)]}),
    "its Sns record": lambda m: json.dumps(lambda_record(m)),
    "HTTPS/SQS notification body": lambda m: json.dumps(notification(m)),
    "SQS message (API)": lambda m: json.dumps({"MessageId": "1", "ReceiptHandle": "h",
                                               "Body": json.dumps(notification(m))}),
    "SQS message (raw delivery)": lambda m: json.dumps({"MessageId": "1", "Body": m}),
    "sqs receive-message output": lambda m: json.dumps({"Messages": [{"MessageId": "1", "Body": json.dumps(
        notification(m))}]}),
    "SQS record of a Lambda event": lambda m: json.dumps({"Records": [{"messageId": "1", "eventSource": "aws:sqs",
                                                                        "body": json.dumps(notification(m))}]}),
    "Lambda on-failure record": lambda m: json.dumps({"version": "1.0",
                                                      "requestContext": {"condition": "RetriesExhausted"},
                                                      "requestPayload": {"Records": [lambda_record(m)]}}),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_ingest_sns_stores_each_shape_where_the_function_would(lake, tmp_path, capsys, shape):
    messages = [event_text("text"), event_text("status_read")]
    files = []
    if shape == "bare message":
        files = [EUM / "text.json", EUM / "status_read.json"]
    else:
        for i, m in enumerate(messages):
            files.append(tmp_path / f"{i}.json")
            files[-1].write_text(SHAPES[shape](m))
    assert cli.main(["ingest-sns", *map(str, files)]) == 0
    want = sorted(layout.raw_key("whatsapp_eum", TODAY(), m.encode()) for m in messages)
    assert keys(lake) == want and [lake.get(k) for k in want] == sorted(
        (m.encode() for m in messages), key=lambda b: layout.digest(b))
    replay = ingest_sns.ingest(files, lake)  # a replay stores nothing twice
    assert [(r.events, r.stored, r.already, r.error) for r in replay] == [(1, 0, 1, None)] * 2
    assert keys(lake) == want


def test_ingest_sns_reports_what_it_cannot_read_and_stores_the_rest(lake, tmp_path, capsys):
    confirmation = tmp_path / "confirm.json"
    confirmation.write_text(json.dumps({"Type": "SubscriptionConfirmation", "Token": "t", "Message": "x"}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe")
    code = cli.main(["ingest-sns", str(confirmation), str(other), str(garbage), str(tmp_path / "missing.json"),
                     str(EUM / "text.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "SNS 'SubscriptionConfirmation' message, not a Notification" in err
    assert "not an SNS notification, an SQS message or an End User Messaging Social event (keys: hello)" in err
    assert "not UTF-8 text" in err and "cannot read it: No such file or directory" in err
    assert "4 of 5 file(s) stored nothing" in err and "Traceback" not in err
    assert keys(lake) == [layout.raw_key("whatsapp_eum", TODAY(), (EUM / "text.json").read_bytes())]


def test_ingest_sns_without_files_is_bad_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ingest-sns"])
    assert exit_.value.code == 2 and "FILE" in capsys.readouterr().err


def test_the_sns_function_imports_nothing_heavy():
    code = ("import sys; import chalicelib.eum; "
            "print(sorted(m for m in ('pyarrow', 'boto3', 'duckdb', 'chatlake') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_a_replayed_lone_surrogate_is_stored_and_rejected_not_lost(lake):
    message = json.dumps({"whatsAppWebhookEntry": "{\"id\":\"\ud800\"}"}, ensure_ascii=False)
    key, stored = eum.store(message, lake, datetime(2026, 11, 24, tzinfo=UTC))
    assert stored and lake.get(key) == message.encode("utf-8", "surrogatepass")
    result = etl.run_day(lake, DAY)
    assert result.rejects == 1 and result.messages == 0
