"""Media of End User Messaging Social messages: `GetWhatsAppMessageMedia` copies the file into the lake's bucket
(moto S3), capture hashes it, stores it content-addressed and deletes the staged copy.

moto does not implement `socialmessaging`: `FakeSocialMessaging` below stands in for that one service. It checks
each call against botocore's own model of the operation (so the parameter names are the real API's), writes real
bytes into the moto bucket at the given key + mediaId, and raises botocore ClientErrors as the service does.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

from chalicelib import etl, eum, layout, media, runtime
from chalicelib import media_capture as mc
from chalicelib.media_eum import EumMedia
from chalicelib.storage import FolderStorage, S3Storage
from tests.conftest import PAYLOADS, keys

TODAY = datetime.now(UTC).date()
BUCKET = "chatlake-test"
META_PHONE = "106540352242922"  # the image event's metadata.phone_number_id and context.MetaPhoneNumberIds
ORIGINATION = "phone-number-id-9c8d7e6f5a4b43c2b1a0f9e8d7c6b5a4"  # from that entry's arn
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"


class FakeSocialMessaging:
    """Stand-in for boto3's `socialmessaging` client (not in moto): `get_whatsapp_message_media` only."""

    def __init__(self, s3: Any, phone: str = ORIGINATION) -> None:
        self.s3, self.phone = s3, phone
        self.files: dict[str, tuple[bytes, str]] = {}
        self.errors: dict[str, list[tuple[str, int]]] = {}  # media id -> (code, HTTP status) to raise, in turn
        self.declared: dict[str, int] = {}  # media id -> fileSize (KB) the metadata claims, if not the real one
        self.calls: list[dict[str, Any]] = []
        self.model = botocore.session.get_session().get_service_model("socialmessaging").operation_model(
            "GetWhatsAppMessageMedia")

    def get_whatsapp_message_media(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, self.model.input_shape)  # raises ParamValidationError, as boto3 would
        self.calls.append(params)
        media_id = params["mediaId"]
        if self.errors.get(media_id):
            code, status = self.errors[media_id].pop(0)
            raise ClientError({"Error": {"Code": code, "Message": f"{code} for {media_id}"},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, "GetWhatsAppMessageMedia")
        if params["originationPhoneNumberId"] != self.phone or media_id not in self.files:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Media not found"},
                               "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetWhatsAppMessageMedia")
        data, mime = self.files[media_id]
        answer = {"mimeType": mime, "fileSize": self.declared.get(media_id, -(-len(data) // 1024))}
        if not params.get("metadataOnly"):
            target = params["destinationS3File"]
            self.s3.put_object(Bucket=target["bucketName"], Key=target["key"] + media_id, Body=data,
                               ContentType=mime)
        return answer


def eum_event(media_id: str) -> str:
    """The corpus's End User Messaging Social image event, carrying `media_id`."""
    event = json.loads((PAYLOADS / "whatsapp_eum" / "image.json").read_text())
    entry = json.loads(event["whatsAppWebhookEntry"])
    message = entry["changes"][0]["value"]["messages"][0]
    message["id"], message["image"]["id"] = f"wamid.{media_id}", media_id
    event["whatsAppWebhookEntry"] = json.dumps(entry)
    return json.dumps(event)


@pytest.fixture
def lake(s3, monkeypatch) -> S3Storage:
    storage = S3Storage(BUCKET, "lake", client=s3)
    monkeypatch.setenv("DATALAKE_URL", f"s3://{BUCKET}/lake")
    monkeypatch.delenv("WHATSAPP_ACCESS_TOKEN", raising=False)
    runtime.use_storage(f"s3://{BUCKET}/lake", storage)
    return storage


def capture(lake: S3Storage, fake: FakeSocialMessaging, **kwargs: Any) -> mc.Capture:
    limits = kwargs.pop("limits", media.Limits())
    return mc.Capture(lake, {}, eum=EumMedia(fake, lake, limits), **kwargs)


def rows(storage) -> dict[str, mc.MediaRow]:
    return {media_id: row for (_, media_id), row in mc.read_table(storage, TODAY)[0].items()}


def staged(storage) -> list[str]:
    return keys(storage, layout.MEDIA_STAGING_PREFIX)


def test_an_eum_image_goes_from_the_sns_event_to_the_media_table_without_a_graph_token(lake, s3):
    fake = FakeSocialMessaging(s3)
    fake.files["1003383421387256"] = (JPEG, "image/jpeg")
    message = (PAYLOADS / "whatsapp_eum" / "image.json").read_text()
    raw_key, _ = eum.store(message, lake)  # what the SNS function stores
    etl.run_day(lake, TODAY)
    runtime.use_client("socialmessaging", fake)
    cap = runtime.media_capture(budget=None)
    assert "whatsapp" in cap.disabled  # no WHATSAPP_ACCESS_TOKEN: the Graph path is off, EUM is not
    (result,) = mc.run(cap, TODAY, [TODAY])

    row = rows(lake)["1003383421387256"]
    sha = hashlib.sha256(JPEG).hexdigest()
    assert result.counts["stored"] == 1 and row.status == "stored" and row.error is None, row
    assert row.media_key == layout.media_key("whatsapp", TODAY, sha, ".jpg") and lake.get(row.media_key) == JPEG
    assert (row.sha256, row.bytes, row.mime_type, row.raw_key) == (sha, len(JPEG), "image/jpeg", raw_key)
    assert row.source == "whatsapp" and row.message_type == "image"
    assert row.message_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTFGOUMwRDZFMkI3QThDNUQ0MwA="
    # metadata first, then the copy into the lake's bucket under a staging prefix of its own, then it is gone
    first, second = fake.calls
    assert first == {"mediaId": "1003383421387256", "originationPhoneNumberId": ORIGINATION, "metadataOnly": True}
    target = second["destinationS3File"]
    assert target["bucketName"] == BUCKET and target["key"].startswith("lake/" + layout.MEDIA_STAGING_PREFIX)
    assert staged(lake) == [] and [k for k in keys(lake, "media/")] == [row.media_key]
    # the messages row of the same event joins it
    messages = pq.read_table(io.BytesIO(lake.get(layout.part_key("messages", TODAY)))).to_pylist()
    (joined,) = [m for m in messages if m["media_id"] == row.media_id]
    assert (joined["source"], joined["message_id"], joined["raw_key"]) == (row.source, row.message_id, raw_key)


def test_too_large_by_the_metadata_is_never_copied(lake, s3):
    fake = FakeSocialMessaging(s3)
    fake.files["big"] = (b"x" * 10, "video/mp4")
    fake.declared["big"] = 50_000  # KB: 50 MB
    eum.store(eum_event("big"), lake)
    mc.run(capture(lake, fake, limits=media.Limits(max_bytes=1_000_000)), TODAY, [TODAY])
    row = rows(lake)["big"]
    assert row.status == "too_large" and "50,000 KB is over MEDIA_MAX_BYTES" in row.error
    assert [c.get("metadataOnly") for c in fake.calls] == [True] and staged(lake) == []


def test_a_staged_copy_over_the_limit_is_too_large_and_deleted(lake, s3):
    fake = FakeSocialMessaging(s3)
    fake.files["liar"] = (b"y" * 5000, "application/pdf")
    fake.declared["liar"] = 1  # the metadata says 1 KB; the copy is 5 KB
    eum.store(eum_event("liar"), lake)
    mc.run(capture(lake, fake, limits=media.Limits(max_bytes=2000)), TODAY, [TODAY])
    assert rows(lake)["liar"].status == "too_large" and staged(lake) == [] and keys(lake, "media/") == []


def test_not_found_fails_with_the_services_message(lake, s3):
    fake = FakeSocialMessaging(s3)  # knows no media
    eum.store(eum_event("gone"), lake)
    mc.run(capture(lake, fake), TODAY, [TODAY])
    row = rows(lake)["gone"]
    assert row.status == "failed" and "ResourceNotFoundException: Media not found" in row.error


def test_a_phone_number_the_event_does_not_name_fails_with_the_reason(lake, s3):
    fake = FakeSocialMessaging(s3)
    event = json.loads(eum_event("m1"))
    event["context"]["MetaPhoneNumberIds"][0]["metaPhoneNumberId"] = "999"
    eum.store(json.dumps(event), lake)
    mc.run(capture(lake, fake), TODAY, [TODAY])
    row = rows(lake)["m1"]
    assert row.status == "failed" and f"phone_number_id ({META_PHONE})" in row.error and fake.calls == []


@pytest.mark.parametrize("code, status", [("ThrottledRequestException", 429), ("InternalServiceException", 500),
                                          ("DependencyException", 502)])
def test_throttling_and_server_errors_stay_pending_then_succeed_after_the_backoff(lake, s3, code, status):
    fake = FakeSocialMessaging(s3)
    fake.files["m1"] = (b"a photo of the box", "image/jpeg")
    fake.errors["m1"] = [(code, status)]
    eum.store(eum_event("m1"), lake)
    now = [datetime.now(UTC).timestamp()]
    cap = capture(lake, fake, clock=lambda: now[0])
    mc.run(cap, TODAY, [TODAY])
    row = rows(lake)["m1"]
    assert row.status == "pending" and code in row.error and row.attempts == 1
    mc.run(cap, TODAY, [TODAY])  # within the backoff: not tried
    assert len(fake.calls) == 1
    now[0] += mc.BACKOFF_FIRST + 1
    mc.run(cap, TODAY, [TODAY])
    row = rows(lake)["m1"]
    assert row.status == "stored" and row.media_key.endswith(".jpg")
    assert lake.get(row.media_key) == b"a photo of the box"
    assert staged(lake) == []


def test_a_staged_copy_left_by_a_killed_run_is_removed_later(lake, s3):
    fake = FakeSocialMessaging(s3)
    lake.put(layout.MEDIA_STAGING_PREFIX + "0123/left-behind", b"partial")
    mc.run(capture(lake, fake, clock=lambda: datetime.now(UTC).timestamp() + 7200), TODAY, [TODAY])
    assert staged(lake) == []


def test_on_a_folder_lake_eum_media_are_disabled_with_the_reason(tmp_path, monkeypatch):
    storage = FolderStorage(tmp_path / "lake")
    monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
    runtime.use_storage(str(tmp_path / "lake"), storage)
    eum.store(eum_event("m1"), storage)
    mc.run(runtime.media_capture(), TODAY, [TODAY])
    row = rows(storage)["m1"]
    assert row.status == "disabled" and "need the lake on S3" in row.error
    assert row.raw_key.startswith(layout.raw_prefix(layout.EUM_SOURCE, TODAY))
