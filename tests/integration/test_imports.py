"""`chatlake import` on both backends: the lake layout, re-imports and later exports, overlap with rows the webhook
captured (through the routes and the ETL), the ETL and the import side by side, PII hashing, media from a .zip,
the CLI's summary and errors, and the analytics pack over a lake holding only imported rows."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from chalice.test import Client

from app import app
from chalicelib import etl, layout
from chalicelib.storage import FolderStorage
from chalicelib.webhook import whatsapp_signature
from chatlake import cli, query
from chatlake.imports import load, whatsapp_export
from chatlake.local import synthetic
from tests.conftest import PROJECT_DIR, SECRETS, keys

EXPORTS = PROJECT_DIR / "tests" / "exports"
MADRID = ZoneInfo("Europe/Madrid")
GB = EXPORTS / "WhatsApp Chat with +34 612 34 56 78.txt"
TG = EXPORTS / "telegram_single_supergroup.json"


def rows_in(storage, prefix: str = "enriched/messages/") -> list[dict]:
    out = []
    for key in keys(storage, prefix):
        if key.endswith(".parquet"):
            out += [{**r, "key": key} for r in pq.read_table(io.BytesIO(storage.get(key))).to_pylist()]
    return out


def imp_tg(storage, data: bytes, **kw) -> load.ImportResult:
    return load.import_telegram(storage, data, zone=MADRID, zone_name="Europe/Madrid", **kw)


def imp_wa(storage, data: bytes, name: str = GB.name, **kw) -> load.ImportResult:
    return load.import_whatsapp(storage, data, name, zone=MADRID, zone_name="Europe/Madrid", **kw)


def test_layout_one_file_per_export_and_day_sent(lake):
    data = TG.read_bytes()
    result = imp_tg(lake, data)
    digest = layout.digest(data)
    assert lake.get(f"imports/source=telegram/{digest}.json") == data  # byte for byte
    # 21 rows (20 messages and one edit); message 20, sent at 00:30 on March 2nd in Madrid, is March 1st in UTC
    assert keys(lake, "enriched/") == [f"enriched/messages/dt=2023-03-01/import-{digest}.parquet"]
    record = json.loads(lake.get(f"imports/source=telegram/{digest}.record.json"))
    assert record["days"] == {"2023-03-01": 21} and record["time_zone"] == "Europe/Madrid"
    assert (result.messages, result.imported, result.duplicates, len(result.unreadable)) == (21, 21, 0, 1)
    assert len(rows_in(lake)) == 21
    # a year-old message lands on its own day, not today's
    full = imp_tg(lake, (EXPORTS / "telegram_full_export.json").read_bytes())
    assert full.days == {"2022-06-01": 1, "2022-12-31": 3, "2023-01-02": 2}


def test_reimport_adds_nothing_and_writes_the_same_bytes(lake):
    data = GB.read_bytes()
    imp_wa(lake, data, me="Shop Owner")
    before = {k: lake.get(k) for k in keys(lake, "enriched/")}
    again = imp_wa(lake, data, me="Shop Owner")
    assert {k: lake.get(k) for k in keys(lake, "enriched/")} == before
    assert again.imported == 9 and again.duplicates == 0  # its own files are rewritten, not compared with


def test_a_later_export_adds_only_the_newer_messages(lake):
    full = GB.read_bytes()
    early = full[: full.index(b"15/01/2023, 23:59")]
    first = imp_wa(lake, early, me="Shop Owner")
    later = imp_wa(lake, full, me="Shop Owner")
    assert first.imported == 5 and (later.imported, later.duplicates) == (4, 5)
    rows = rows_in(lake)
    assert len(rows) == 9 and len({(r["message_id"], r["edited_at"]) for r in rows}) == 9
    # and importing the earlier one again changes nothing either
    again = imp_wa(lake, early, me="Shop Owner")
    assert again.imported == 5 and len(rows_in(lake)) == 9


def test_dry_run_writes_nothing(lake):
    result = imp_tg(lake, TG.read_bytes(), dry_run=True)
    assert result.imported == 21 and keys(lake) == []


def test_etl_and_import_keep_each_others_rows(lake):
    day = date(2023, 3, 1)
    batch = synthetic.deliveries(20, seed=3, day=day)
    synthetic.store(lake, batch)
    etl.run_day(lake, day)  # ETL, then import
    imp_tg(lake, TG.read_bytes())
    names = [k.rpartition("/")[2] for k in keys(lake, layout.enriched_prefix("messages", day))]
    assert names[-1] == "part-0.parquet" and names[0].startswith("import-")
    assert etl.behind_reason(lake, day) is None  # the import does not make the day look behind
    etl.run_day(lake, day)  # import, then ETL
    after = [k.rpartition("/")[2] for k in keys(lake, layout.enriched_prefix("messages", day))]
    assert after == names
    imported = [r for r in rows_in(lake, layout.enriched_prefix("messages", day)) if "import-" in r["key"]]
    assert len(imported) == 21


# --- overlap with what the webhook captured ----------------------------------------------------------------------


@pytest.fixture
def client(secrets_env):
    with Client(app, stage_name="local") as c:
        yield c


def post_telegram(client, update: dict) -> None:
    r = client.http.post("/telegram", body=json.dumps(update).encode(), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRETS["TELEGRAM_SECRET_TOKEN"]})
    assert r.status_code == 200


def post_whatsapp(client, messages: list[dict], contacts: list[dict], field: str = "messages") -> None:
    value = {"messaging_product": "whatsapp", "metadata": dict(synthetic.METADATA)}
    value.update({"message_echoes": messages} if field == "smb_message_echoes" else
                 {"messages": messages, "contacts": contacts})
    body = json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}]}).encode()
    r = client.http.post("/whatsapp", body=body, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": whatsapp_signature(SECRETS["WHATSAPP_APP_SECRET"], body)})
    assert r.status_code == 200


def run_etl_today(storage) -> None:
    etl.run_day(storage, datetime.now(UTC).date())


def recent(minutes_ago: int) -> int:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return int((now - timedelta(minutes=minutes_ago)).timestamp())


def local_iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, MADRID).replace(tzinfo=None).isoformat()


def tg_update(update_id: int, chat: dict, number: int, when: int, user: dict, text: str) -> dict:
    return {"update_id": update_id, "message": {"message_id": number, "date": when, "chat": chat, "from": user,
                                                "text": text}}


def test_telegram_supergroup_rows_the_webhook_captured_are_not_added_again(lake, client):
    # The bot captured messages 10 and 11 of a supergroup; the export has 9 (before the bot), 10 and 11.
    t = [recent(30), recent(20), recent(10)]
    chat = {"id": -1001234567890, "type": "supergroup", "title": "Shop Chat"}
    ana = {"id": 111, "is_bot": False, "first_name": "Ana"}
    post_telegram(client, tg_update(1, chat, 10, t[1], ana, "ten"))
    post_telegram(client, tg_update(2, chat, 11, t[2], ana, "eleven"))
    run_etl_today(lake)
    export = {"name": "Shop Chat", "type": "public_supergroup", "id": 1234567890, "messages": [
        {"id": n, "type": "message", "date": local_iso(when), "date_unixtime": str(when), "from": "Ana",
         "from_id": "user111", "text": text} for n, when, text in ((9, t[0], "nine"), (10, t[1], "ten (typo fixed)"),
                                                                  (11, t[2], "eleven"))]}
    result = imp_tg(lake, json.dumps(export).encode())
    assert (result.imported, result.duplicates) == (1, 2)  # by id: the text need not match
    ids = sorted(r["message_id"] for r in rows_in(lake))
    assert ids == ["-1001234567890:10", "-1001234567890:11", "-1001234567890:9"]


def test_telegram_private_chat_overlap_is_found_by_fingerprint(lake, client):
    # A private chat's message numbers are each account's own: the bot's 5 is not the exporter's 5.
    t = recent(15)
    chat = {"id": 111, "type": "private", "first_name": "Ana"}
    post_telegram(client, tg_update(1, chat, 5, t, {"id": 111, "is_bot": False, "first_name": "Ana"}, "hello bot"))
    run_etl_today(lake)
    export = {"name": "Ana", "type": "bot_chat", "id": 111, "messages": [
        {"id": 5, "type": "message", "date": local_iso(t - 60), "date_unixtime": str(t - 60), "from": "Ana",
         "from_id": "user111", "text": "a different message numbered 5 by another account"},
        {"id": 6, "type": "message", "date": local_iso(t), "date_unixtime": str(t), "from": "Ana",
         "from_id": "user111", "text": "hello bot"}]}
    result = imp_tg(lake, json.dumps(export).encode())
    assert (result.imported, result.duplicates) == (1, 1)


def test_whatsapp_overlap_by_fingerprint_chat_sender_minute_text(lake, client):
    t = [recent(40), recent(30), recent(20)]
    contact = "34612345678"
    post_whatsapp(client, [{"from": contact, "id": "wamid.A", "timestamp": str(t[1] + 25), "type": "text",
                            "text": {"body": "Do you deliver?"}}],
                  [{"wa_id": contact, "profile": {"name": "Marta"}}])
    post_whatsapp(client, [{"from": synthetic.METADATA["display_phone_number"], "to": contact, "id": "wamid.B",
                            "timestamp": str(t[2] + 5), "type": "text", "text": {"body": "Yes we do"}}], [],
                  field="smb_message_echoes")
    run_etl_today(lake)

    def line(when: int, who: str, text: str) -> str:
        return datetime.fromtimestamp(when, MADRID).strftime("%d/%m/%Y, %H:%M") + f" - {who}: {text}\n"

    text = (line(t[0], "+34 612 34 56 78", "Hello, before the webhook was connected")
            + line(t[1], "+34 612 34 56 78", "Do you deliver?") + line(t[2], "Shop", "Yes we do")
            + line(t[2], "+34 612 34 56 78", "Do you deliver?"))  # the same words again: a new message
    result = imp_wa(lake, text.encode(), "WhatsApp Chat with +34 612 34 56 78.txt", me="Shop",
                    date_order="dmy")  # today's date may read both ways
    assert (result.imported, result.duplicates) == (2, 2)
    assert sorted(r["text"] for r in rows_in(lake) if "import-" in r["key"]) == [
        "Do you deliver?", "Hello, before the webhook was connected"]


def test_pii_hash_rows_join_the_webhooks(lake, client, monkeypatch):
    monkeypatch.setenv("PII_MODE", "hash")
    monkeypatch.setenv("PII_SALT", "s3cret-salt")
    t = recent(10)
    contact = "34612345678"
    post_whatsapp(client, [{"from": contact, "id": "wamid.C", "timestamp": str(t), "type": "text",
                            "text": {"body": "live"}}], [{"wa_id": contact, "profile": {"name": "Marta"}}])
    ctx = __import__("chalicelib.runtime", fromlist=["x"]).etl_context()
    etl.run_day(lake, datetime.now(UTC).date(), ctx.pii_salt)
    when = datetime.fromtimestamp(t - 120, MADRID).strftime("%d/%m/%Y, %H:%M")
    result = imp_wa(lake, f"{when} - +34 612 34 56 78: from the export\n".encode(), pii_salt=ctx.pii_salt,
                    date_order="dmy")
    assert result.imported == 1
    rows = rows_in(lake)
    live, imported = (next(r for r in rows if r["text"] == x) for x in ("live", "from the export"))
    assert imported["chat_id"] == live["chat_id"] != contact and imported["sender_phone"] == live["sender_phone"]
    assert imported["sender_name"] is None and contact not in json.dumps(imported, default=str)


def test_whatsapp_zip_media_go_to_the_media_area(lake):
    photo = b"\xff\xd8\xff\xe0 a jpeg"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("_chat.txt", (EXPORTS / "_chat.txt").read_bytes())
        z.writestr("00000012-PHOTO-2023-01-13-20-01-09.jpg", photo)
    data = buffer.getvalue()
    result = load.import_whatsapp(lake, data, "WhatsApp Chat - Book Club.zip", zone=ZoneInfo("America/New_York"),
                                  zone_name="America/New_York")
    digest = layout.digest(data)
    assert lake.get(f"imports/source=whatsapp/{digest}.zip") == data
    media_key = f"media/source=whatsapp/dt=2023-01-14/{layout.digest(photo)}.jpg"
    assert keys(lake, "media/") == [media_key] and lake.get(media_key) == photo and result.media_stored == 1
    assert result.warnings == ["1 attachment(s) named by messages are not in the export: their rows keep the file "
                               "name as media_id"]
    row = next(r for r in rows_in(lake) if r["message_type"] == "image" and r["media_id"])
    assert row["media_id"] == "00000012-PHOTO-2023-01-13-20-01-09.jpg" and row["media_mime_type"] == "image/jpeg"


def test_a_zip_in_another_language_links_its_media(lake):
    """Spanish Android writes "(archivo adjunto)": the files in the .zip say which lines are attachments."""
    photo, card = b"\xff\xd8\xff\xe0 una foto", b"BEGIN:VCARD\r\nFN:Jonas Weber\r\nEND:VCARD\r\n"
    chat = ("15/01/2023, 10:00 - Luc\u00eda: IMG-20230115-WA0003.jpg (archivo adjunto)\nla foto\n"
            "15/01/2023, 10:01 - Luc\u00eda: Jonas Weber.vcf (archivo adjunto)\n"
            "15/01/2023, 10:02 - Luc\u00eda: gracias (archivo adjunto)\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("WhatsApp Chat con Luc\u00eda.txt", chat.encode())
        z.writestr("IMG-20230115-WA0003.jpg", photo)
        z.writestr("Jonas Weber.vcf", card)
    result = imp_wa(lake, buffer.getvalue(), "WhatsApp Chat con Luc\u00eda.zip")
    assert result.media_stored == 2 and not result.warnings
    assert keys(lake, "media/") == sorted([f"media/source=whatsapp/dt=2023-01-15/{layout.digest(photo)}.jpg",
                                           f"media/source=whatsapp/dt=2023-01-15/{layout.digest(card)}.vcf"])
    rows = sorted(rows_in(lake), key=lambda r: r["sent_at"])
    assert [(r["message_type"], r["media_id"], r["text"]) for r in rows] == [
        ("image", "IMG-20230115-WA0003.jpg", "la foto"), ("contacts", "Jonas Weber.vcf", None),
        ("text", None, "gracias (archivo adjunto)")]


# --- the command -------------------------------------------------------------------------------------------------


def test_cli_summary_unreadable_lines_and_errors(lake, capsys, tmp_path):
    es = EXPORTS / "WhatsApp Chat with Lucía.txt"
    assert cli.main(["import", "whatsapp-export", str(es), "--me", "Tienda", "--tz", "Europe/Madrid",
                     "--format", "json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert (summary["messages"], summary["imported"], summary["duplicates"], summary["unreadable"]) == (4, 4, 0, 2)
    assert summary["time_zone"] == "Europe/Madrid" and summary["date_order"] == "dmy"
    assert "unreadable: line 1: garbage before the first message" in err and "unreadable: line 6:" in err
    assert cli.main(["import", "whatsapp-export", str(es), "--me", "Tienda", "--tz", "Europe/Madrid"]) == 0
    out, _ = capsys.readouterr()
    assert "duplicates" in out and "times read in Europe/Madrid" in out

    with pytest.raises(SystemExit) as exit_:
        cli.main(["import", "whatsapp-export", str(EXPORTS / "WhatsApp Chat with Ana.txt")])
    assert exit_.value.code == 2 and "--date-order dmy or --date-order mdy" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["import", "telegram-export", str(tmp_path / "missing.json")])
    assert exit_.value.code == 2 and "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["import", "telegram-export", str(TG), "--tz", "Mars/Olympus"])
    assert exit_.value.code == 2 and "not a time zone" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("not json")
    assert cli.main(["import", "telegram-export", str(tmp_path / "x.json")]) == 1
    assert "not readable JSON" in capsys.readouterr().err
    before = keys(lake, "")
    for name, body, said in (("WhatsApp Chat with Ana.txt", TG.read_bytes(), "is JSON, not a WhatsApp export"),
                             ("WhatsApp Chat with Ana.txt", b"", "is empty"),
                             ("WhatsApp Chat with Ana.txt", "2023\u5e741\u670815\u65e5 \x1b[31mhi\n".encode(),
                              "no line of WhatsApp Chat with Ana.txt is a WhatsApp message")):
        (tmp_path / name).write_bytes(body)
        assert cli.main(["import", "whatsapp-export", str(tmp_path / name), "--tz", "UTC"]) == 1
        err = capsys.readouterr().err
        assert said in err and "\x1b" not in err and len(err.strip().splitlines()) == 1
    assert keys(lake, "") == before  # nothing kept from a file that is no export


def test_a_whatsapp_text_saved_again_as_utf16_reads_as_the_phone_wrote_it(lake):
    text = (EXPORTS / "WhatsApp Chat with Luc\u00eda.txt").read_bytes().decode("utf-8")
    utf8 = whatsapp_export.parse(text.encode("utf-8"), "Luc\u00eda", "k", MADRID)
    for codec in ("utf-16", "utf-16-be"):
        data = text.encode(codec) if codec == "utf-16" else b"\xfe\xff" + text.encode(codec)
        again = whatsapp_export.parse(data, "Luc\u00eda", "k", MADRID)
        assert again.rows == utf8.rows and again.unreadable == utf8.unreadable


def test_the_analytics_pack_runs_over_imported_rows_alone(tmp_path):
    storage = FolderStorage(tmp_path / "lake")
    imp_tg(storage, TG.read_bytes())
    imp_tg(storage, (EXPORTS / "telegram_full_export.json").read_bytes())
    imp_wa(storage, GB.read_bytes(), me="Shop Owner")
    imp_wa(storage, (EXPORTS / "WhatsApp Chat mit Jonas.txt").read_bytes(), "WhatsApp Chat mit Jonas.txt",
           me="Praxis Weber")
    engine = query.DuckDBEngine(query.connect_duckdb(), storage)
    answers = {f.name: engine.run(f.statement).records() for f in query.analytics()}
    per_day = {(r["day"], r["source"]): r for r in answers["messages_per_day"]}
    assert per_day[("2023-03-01", "telegram")]["messages"] == 20 and per_day[("2023-03-01", "telegram")]["edits"] == 1
    assert per_day[("2023-01-15", "whatsapp")] == {"day": "2023-01-15", "source": "whatsapp", "messages": 7,
                                                   "inbound": 5, "outbound": 2, "edits": 1}
    assert per_day[("2023-04-03", "whatsapp")]["outbound"] == 1
    assert answers["message_types"] and answers["top_chats"] and answers["busiest_hours"]
    assert any(r["answered"] for r in answers["first_response_time"])  # --me rows answer the contact's


def test_a_forgotten_person_is_not_imported_again(lake):
    """An erasure request survives a re-import of an old export: the deny list drops the person's rows."""
    data = GB.read_bytes()
    assert imp_wa(lake, data, me="Shop Owner").imported == 9
    assert cli.main(["forget", "--chat", "34612345678", "--yes"]) == 0  # the whole private chat
    assert not [r for r in rows_in(lake) if r["chat_id"] == "34612345678"]
    again = imp_wa(lake, data, me="Shop Owner")
    assert (again.imported, again.forgotten) == (0, 9)
    assert not [r for r in rows_in(lake) if r["chat_id"] == "34612345678"]


def test_a_version_twice_in_one_export_is_kept_once_in_a_fresh_lake(tmp_path):
    """The fresh-lake shortcut (no comparison) holds only where no version comes twice: a message listed twice is
    one row, while its edit stays a version of its own."""
    message = {"id": 5, "type": "message", "date": "2023-03-01T10:00:00", "date_unixtime": "1677661200",
               "from": "Ana", "from_id": "user7", "text": "hi", "edited": "2023-03-01T10:02:00",
               "edited_unixtime": "1677661320"}
    other = {**message, "id": 6, "text": "bye"}
    other.pop("edited"), other.pop("edited_unixtime")
    export = {"name": "Shop", "type": "public_supergroup", "id": 42, "messages": [message, other, message]}
    result = imp_tg(FolderStorage(tmp_path), json.dumps(export).encode())
    assert (result.messages, result.imported, result.duplicates) == (5, 3, 2)
    rows = rows_in(FolderStorage(tmp_path))
    assert sorted((r["message_id"], r["edited_at"] is not None) for r in rows) == [
        ("-10042:5", False), ("-10042:5", True), ("-10042:6", False)]
