"""`chatlake forget`: one person spread over every layer (a private chat, a group, a WhatsApp batch with two customers,
statuses to them, a reject, a quarantined body, a kept import and its rows, a media object and its row), on both
backends. After forget no object holds their identifier, name or PII_SALT hash (Parquet read back and searched
too); everyone else's rows are unchanged row for row; a re-delivered old body does not bring them back; --dry-run
changes nothing; a killed run, re-run, converges; the tables equal what the ETL writes from the redacted raw layer.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from chalicelib import erasure, etl, layout, pii
from chalicelib.storage import Storage
from chatlake import cli, forget
from chatlake.local.synthetic import telegram_bytes, whatsapp_bytes

D1 = date(2025, 3, 10)
D2, D3 = D1 + timedelta(days=1), D1 + timedelta(days=2)
DAYS = [D1, D2, D3]
T0 = 1_741_600_000
SALT = "lake-pii-salt-for-tests-0123456789"
PHONE, WA_NAME = "15557654321", "Zyxwa Quorble"
OTHER_PHONE, OTHER_NAME = "15550001111", "Other Person"
TG_ID, TG_NAME, TG_USER = 7400123456, "Plimbo Snargle", "plimbosn"
TG_OTHER = 6100222333
GROUP = -4012345678
META = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def wa(value: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": META, **value}
    return whatsapp_bytes({"object": "whatsapp_business_account",
                           "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]})


def wa_text(phone: str, name: str, wamid: str, text: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {"contact": {"profile": {"name": name}, "wa_id": phone},
            "message": {"from": phone, "id": wamid, "timestamp": str(ts), "text": {"body": text}, "type": "text",
                        **extra}}


def wa_status(phone: str, wamid: str, ts: int) -> dict[str, Any]:
    return {"id": wamid, "status": "delivered", "timestamp": str(ts), "recipient_id": phone}


def tg_user(uid: int, name: str, username: str | None = None) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    user: dict[str, Any] = {"id": uid, "is_bot": False, "first_name": first, "last_name": last}
    if username:
        user["username"] = username
    return user


def tg(update_id: int, message: dict[str, Any]) -> bytes:
    return telegram_bytes({"update_id": update_id, "message": message})


def person_wa() -> dict[date, list[bytes]]:
    me = wa_text(PHONE, WA_NAME, "wamid.ME1", "my private order 42", T0 + 1)
    me2 = wa_text(PHONE, WA_NAME, "wamid.ME2", "second from me", T0 + 2)
    other = wa_text(OTHER_PHONE, OTHER_NAME, "wamid.OT1", "hello from other", T0 + 3)
    other_alone = wa_text(OTHER_PHONE, OTHER_NAME, "wamid.OT2", "other alone", T0 + 4)
    image = {"from": PHONE, "id": "wamid.MEIMG", "timestamp": str(T0 + 5), "type": "image",
             "image": {"id": "media-me-1", "mime_type": "image/jpeg", "caption": "my receipt"}}
    other_image = {"from": OTHER_PHONE, "id": "wamid.OTIMG", "timestamp": str(T0 + 6), "type": "image",
                   "image": {"id": "media-other-1", "mime_type": "image/jpeg"}}
    no_time = {"from": PHONE, "id": "wamid.MEBAD", "text": {"body": "no timestamp"}, "type": "text"}
    return {
        D1: [wa({"contacts": [me["contact"]], "messages": [me["message"]]}),
             wa({"contacts": [me["contact"], other["contact"]], "messages": [me2["message"], other["message"]]}),
             wa({"contacts": [other_alone["contact"]], "messages": [other_alone["message"]]}),
             wa({"contacts": [me["contact"]], "messages": [image]}),
             wa({"contacts": [other["contact"]], "messages": [other_image]})],
        D2: [wa({"statuses": [wa_status(PHONE, "wamid.OUT1", T0 + 10)]}),
             wa({"statuses": [wa_status(PHONE, "wamid.OUT2", T0 + 11), wa_status(OTHER_PHONE, "wamid.OUT3",
                                                                                  T0 + 12)]}),
             wa({"contacts": [me["contact"]], "messages": [no_time]})],  # a reject
    }


def person_tg() -> dict[date, list[bytes]]:
    me, other = tg_user(TG_ID, TG_NAME, TG_USER), tg_user(TG_OTHER, "Anna Other", "anna_o")
    group = {"id": GROUP, "title": "Support Team", "type": "group"}
    mine_in_group = {"message_id": 50, "from": me, "chat": group, "date": T0 + 20, "text": "my group secret"}
    return {
        D1: [tg(1, {"message_id": 10, "from": me, "chat": {**me, "type": "private"}, "date": T0 + 21,
                    "text": "private hello"}),
             tg(2, mine_in_group),
             tg(3, {"message_id": 11, "from": other, "chat": {**other, "type": "private"}, "date": T0 + 22,
                    "text": "other private"})],
        D3: [tg(4, {"message_id": 51, "from": other, "chat": group, "date": T0 + 23, "text": "reply to them",
                    "reply_to_message": mine_in_group}),
             telegram_bytes({"update_id": 5, "callback_query": {"id": "cb1", "from": me, "data": "yes",
                                                                "message": {"message_id": 12, "chat": {**me, "type":
                                                                                                       "private"},
                                                                            "date": T0 + 24, "text": "menu"}}})],
    }


def build(storage: Storage, pii_salt: str | None = None) -> None:
    for source, days in (("whatsapp", person_wa()), ("telegram", person_tg())):
        for day, bodies in days.items():
            for body in bodies:
                storage.put(layout.raw_key(source, day, body), body)
    bad = b'{"from": "' + PHONE.encode() + b'", "broken'
    body_key, note_key = layout.quarantine_keys("whatsapp", D2, bad)
    storage.put(body_key, bad)
    storage.put(note_key, b'{"reason": "not JSON", "received_at": "2025-03-11T10:00:00Z"}')
    etl.run_days(storage, DAYS, pii_salt)
    # a kept Telegram Desktop export, and the rows its import wrote beside the ETL's
    export = json.dumps({"name": TG_NAME, "type": "personal_chat", "id": TG_ID, "messages": [
        {"id": 1, "type": "message", "date": "2025-03-09T10:00:00", "from": TG_NAME, "from_id": f"user{TG_ID}",
         "text": "exported secret"},
        {"id": 2, "type": "message", "date": "2025-03-09T10:01:00", "from": "Shop", "from_id": "user999000111",
         "text": "exported answer"}]}).encode()
    storage.put(f"{layout.IMPORTS_ROOT}telegram/{layout.digest(export)}.json", export)
    storage.put(f"{layout.IMPORTS_ROOT}whatsapp/{'ab' * 32}.txt",
                f"09/03/2025, 10:00 - +{PHONE}: exported whatsapp secret\n".encode())
    from chalicelib.schema import Message
    h = pii.hasher(pii_salt) if pii_salt else (lambda v: v)
    rows = [Message("telegram", f"{h(str(TG_ID))}:1", 1_741_514_400_000, h(str(TG_ID)), "private", "text",
                    "imports/telegram/x.json", sender_id=h(str(TG_ID)), sender_name=None if pii_salt else TG_NAME,
                    text="exported secret"),
            Message("telegram", f"{h(str(TG_ID))}:2", 1_741_514_460_000, h(str(TG_ID)), "private", "text",
                    "imports/telegram/x.json", sender_id="999000111", sender_name="Shop", text="exported answer"),
            Message("telegram", "-100:7", 1_741_514_470_000, "-100", "group", "text", "imports/telegram/y.json",
                    sender_id="999000111", sender_name="Shop", text="kept import row")]
    day0 = D1 - timedelta(days=1)
    storage.put(layout.import_part_key("messages", day0, "e" * 64), etl.to_parquet("messages", rows))
    # media: the person's image and someone else's, with the media table's rows
    import pyarrow as pa
    mine, theirs = b"\xff\xd8JPEG-of-person", b"\xff\xd8JPEG-of-other"
    mine_key = f"{layout.MEDIA_ROOT}source=whatsapp/dt={D1}/{layout.digest(mine)}.jpg"
    theirs_key = f"{layout.MEDIA_ROOT}source=whatsapp/dt={D1}/{layout.digest(theirs)}.jpg"
    storage.put(mine_key, mine)
    storage.put(theirs_key, theirs)
    media = pa.table({"source": ["whatsapp", "whatsapp"], "media_id": ["media-me-1", "media-other-1"],
                      "message_id": ["wamid.MEIMG", "wamid.OTIMG"], "media_key": [mine_key, theirs_key],
                      "status": ["stored", "stored"]})
    buffer = io.BytesIO()
    pq.write_table(media, buffer)
    storage.put(f"enriched/media/dt={D1}/part-0.parquet", buffer.getvalue())


def snapshot(storage: Storage) -> dict[str, bytes]:
    return {k: storage.get(k) for k in storage.keys("")}


def table_rows(storage: Storage) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key in storage.keys(layout.ENRICHED_ROOT):
        table = key.split("/")[1]
        out.setdefault(table, []).extend(pq.read_table(io.BytesIO(storage.get(key))).to_pylist())
    return out


def searchable(key: str, data: bytes) -> bytes:
    """The object's bytes, and for Parquet its values too (they are compressed in the file)."""
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        return data + repr(table.to_pylist()).encode() + repr(table.schema.metadata).encode()
    return data


def leaks(storage: Storage, needles: list[str]) -> list[tuple[str, str]]:
    found = []
    for key, data in snapshot(storage).items():
        text = searchable(key, data)
        for needle in needles:
            if needle.encode() in text or json.dumps(needle).encode()[1:-1] in text:
                found.append((key, needle))
    return found


def is_wa_person(table: str, row: dict[str, Any], values: set[str]) -> bool:
    if table == "messages":
        return row["sender_id"] in values or (row["chat_type"] == "private" and row["chat_id"] in values)
    if table == "statuses":
        return row["recipient_id"] in values
    if table == "media":
        return row["message_id"] == "wamid.MEIMG"
    return False


def others(rows: dict[str, list[dict[str, Any]]], values: set[str], rejects_of: set[str]) -> dict[str, list]:
    return {t: sorted((r for r in rs if not is_wa_person(t, r, values) and r.get("raw_key") not in rejects_of),
                      key=repr) for t, rs in rows.items()}


def wa_raw_keys_giving_rejects() -> set[str]:
    return {layout.raw_key("whatsapp", D2, person_wa()[D2][2])}


def forget_phone(*extra: str) -> int:
    return cli.main(["forget", "--phone", f"+{PHONE[0]} {PHONE[1:4]}-{PHONE[4:]}", "--yes", *extra])


@pytest.mark.parametrize("mode", ["keep", "hash"])
def test_forget_removes_the_person_from_every_layer_and_keeps_everyone_else(
        lake: Storage, mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PII_SALT", SALT)
    pii_salt = SALT if mode == "hash" else None
    if mode == "hash":
        monkeypatch.setenv("PII_MODE", "hash")
    build(lake, pii_salt)
    h = pii.hasher(SALT)
    before = table_rows(lake)
    values = {PHONE, h(PHONE) or ""}
    assert any(is_wa_person("messages", r, values) for r in before["messages"])
    assert leaks(lake, [PHONE, WA_NAME, h(PHONE) or ""])  # the fixture does hold them

    assert forget_phone() == 0
    assert "audit record" in capsys.readouterr().out
    assert leaks(lake, [PHONE, WA_NAME, h(PHONE) or ""]) == []
    after = table_rows(lake)
    assert others(after, values, set()) == others(before, values, wa_raw_keys_giving_rejects())
    assert [r["message_id"] for r in after["media"]] == ["wamid.OTIMG"]
    assert list(lake.keys(layout.MEDIA_ROOT)) == [after["media"][0]["media_key"]]
    # the tables are what the ETL writes from the redacted raw layer with the deny list, and nothing is behind
    assert all(etl.behind_reason(lake, d, pii_salt) is None for d in DAYS)
    etl.run_days(lake, DAYS, pii_salt)
    assert table_rows(lake) == after

    assert cli.main(["forget", "--telegram-user", str(TG_ID), "--yes"]) == 0
    tg_values = {str(TG_ID), h(str(TG_ID)) or ""}
    assert leaks(lake, [str(TG_ID), TG_NAME.split()[0], TG_NAME.split()[1], TG_USER, h(str(TG_ID)) or "",
                        PHONE, WA_NAME]) == []
    final = table_rows(lake)
    texts = {r["text"] for r in final["messages"]}
    assert {"reply to them", "other private", "kept import row"} <= texts
    # their private chat goes as a whole, the shop's answers in it too
    assert not {"private hello", "my group secret", "exported secret", "exported answer"} & texts
    assert not any(r["sender_id"] in tg_values for r in final["messages"])
    # audit records: the salted hash and counts, never the identifier
    records = [json.loads(lake.get(k)) for k in lake.keys(layout.ERASURE_ROOT) if k.count("/") == 2
               and not k.endswith("salt.json")]
    assert len(records) == 2 and all(r["subject"] and r["counts"] for r in records)


def test_a_redelivered_old_body_does_not_bring_them_back(lake: Storage) -> None:
    build(lake)
    assert forget_phone() == 0
    d4 = D3 + timedelta(days=1)
    for body in person_wa()[D1] + person_wa()[D2]:  # a platform retry of everything, days later
        lake.put(layout.raw_key("whatsapp", d4, body), body)
    result = etl.run_day(lake, d4)
    assert result.deliveries == 8 and result.messages == 0  # the others' rows are retries of D1's
    rows = table_rows(lake)
    assert not any(is_wa_person(t, r, {PHONE}) for t, rs in rows.items() for r in rs)
    # only the new raw copies hold them (until the next forget), never the tables or the ETL's records
    new_copies = {k for k in lake.keys(f"raw/source=whatsapp/dt={d4}/") if PHONE.encode() in lake.get(k)}
    assert len(new_copies) == 6 and {k for k, _ in leaks(lake, [PHONE, WA_NAME])} == new_copies


def test_dry_run_changes_nothing(lake: Storage, capsys: pytest.CaptureFixture[str]) -> None:
    build(lake)
    before = snapshot(lake)
    assert forget_phone("--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was changed" in out and "raw deleted" in out and "messages rows" in out
    assert PHONE not in out and WA_NAME not in out
    assert snapshot(lake) == before


class Killed(BaseException):
    """A kill -9 half-way: nothing after it runs (not an Exception: no handler catches it)."""


@pytest.mark.parametrize("after_writes", [1, 3, 6, 12])
def test_a_killed_forget_rerun_converges(lake: Storage, after_writes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    build(lake)
    before = table_rows(lake)
    writes = {"n": 0}
    put, delete = lake.put, lake.delete

    def counting(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            writes["n"] += 1
            if writes["n"] > after_writes:
                raise Killed
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(lake, "put", counting(put))
    monkeypatch.setattr(lake, "delete", counting(delete))
    with pytest.raises(Killed):
        forget_phone()
    monkeypatch.setattr(lake, "put", put)
    monkeypatch.setattr(lake, "delete", delete)
    assert forget_phone() == 0
    assert leaks(lake, [PHONE, WA_NAME]) == []
    assert others(table_rows(lake), {PHONE}, set()) == others(before, {PHONE}, wa_raw_keys_giving_rejects())
    assert all(etl.behind_reason(lake, d) is None for d in DAYS)


def test_chat_forgets_a_private_chat_but_refuses_a_group(lake: Storage, capsys: pytest.CaptureFixture[str]) -> None:
    build(lake)
    with pytest.raises(SystemExit) as e:
        cli.main(["forget", "--chat", str(GROUP), "--yes"])
    assert e.value.code == 2 and "not a private chat" in capsys.readouterr().err
    assert cli.main(["forget", "--chat", str(TG_ID), "--yes"]) == 0
    texts = {r["text"] for r in table_rows(lake)["messages"]}
    assert "private hello" not in texts and "my group secret" in texts  # their group messages are not the chat's


def test_usage_errors_and_confirmation(lake: Storage, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    build(lake)
    before = snapshot(lake)
    for argv in (["forget", "--phone", "12"], ["forget", "--phone", "abc"], ["forget", "--wa-id", "x y"],
                 ["forget", "--phone", PHONE]):  # the last: no terminal and no --yes
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert cli.main(["forget", "--phone", PHONE]) == 1
    assert snapshot(lake) == before


def test_deny_list_never_equals_the_pii_hash_and_applies_in_the_etl(lake: Storage) -> None:
    subject = forget.Subject.parse("phone", PHONE)
    assert erasure.subject_hash(SALT, subject.value) != pii.hasher(SALT)(PHONE)
    assert subject.pattern().search(b'{"wa_id":"\\u0031' + PHONE[1:].encode() + b'"}')
    assert not subject.pattern().search(b'"9' + PHONE.encode() + b'"')
    build(lake)
    assert forget_phone() == 0
    deny = erasure.load(lake, None)
    assert deny and deny.digest == erasure.deny_digest(lake)
