"""The export parsers (pure): Telegram Desktop's result.json in both shapes, WhatsApp's "Export chat" in several
locales and both phone layouts, on files written from the formats' documentation (tests/exports)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chatlake.imports import telegram_export, whatsapp_export
from tests.conftest import PROJECT_DIR

EXPORTS = PROJECT_DIR / "tests" / "exports"
MADRID = ZoneInfo("Europe/Madrid")


def ms(*args: int, tz=UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def wa(name: str, zone=MADRID, **kwargs) -> whatsapp_export.Export:
    data = (EXPORTS / name).read_bytes()
    chat = kwargs.pop("chat", None) or whatsapp_export.chat_name_of(name)
    return whatsapp_export.parse(data, chat, "imports/source=whatsapp/x.txt", zone, **kwargs)


def by_text(export) -> dict:
    return {m.text: m for m in export.messages if not m.is_edit}


# --- WhatsApp ------------------------------------------------------------------------------------------------------


def test_android_english_24h_day_month():
    export = wa("WhatsApp Chat with +34 612 34 56 78.txt", me="Shop Owner")
    assert export.date_order == "dmy" and export.chat_type == "private" and not export.unreadable
    rows = export.messages
    kinds = [m.message_type for m in rows]
    assert kinds == ["system", "text", "text", "media", "revoke", "text", "text", "text", "text"]
    system, hi, reply, media, deleted = rows[:5]
    assert system.sender_id is None and system.text.startswith("Messages and calls are end-to-end encrypted")
    assert hi.sent_at == ms(2023, 1, 15, 10, 0, tz=MADRID) == ms(2023, 1, 15, 9, 0)
    assert (hi.chat_id, hi.sender_id, hi.sender_phone, hi.sender_name) == (
        "34612345678", "34612345678", "34612345678", "+34 612 34 56 78")
    assert hi.direction == "in" and reply.direction == "out" and reply.sender_phone is None
    assert reply.text == "Yes! Orders over 30€ ship free.\nDelivery takes 2-3 days.\n\nAnything else?"  # multi-line
    assert media.text is None and media.media_id is None
    assert deleted.text is None
    original, edit = rows[5], rows[6]
    assert (original.is_edit, edit.is_edit, original.message_id) == (False, True, edit.message_id)
    assert original.text == edit.text == "Sorry, I meant 40€" and edit.edited_at == edit.sent_at
    assert by_text(export)["ok: see you"].sender_phone == "34612345678"  # ": " inside the text
    assert by_text(export)["null"].text == "null"


def test_ios_english_12h_month_day_with_bom_marks_and_narrow_spaces():
    export = wa("_chat.txt", chat="Book Club", zone=ZoneInfo("America/New_York"), me="Me Myself")
    assert export.date_order == "mdy" and export.chat_type == "group" and not export.unreadable
    rows = export.messages
    systems = [m for m in rows if m.message_type == "system"]
    assert [m.text for m in systems] == [
        "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or "
        "listen to them.", "Ana created group “Book Club”", "Ana added Ben and Carla"]
    assert all(m.sender_id is None and m.chat_title == "Book Club" for m in systems)
    texts = by_text(export)
    assert texts["Welcome! First book: Dune"].sent_at == ms(2023, 1, 5, 14, 20, 11)  # 9:20:11 AM EST
    assert texts["Noon here"].sent_at == ms(2023, 1, 5, 17, 0)  # 12:00 PM is noon
    assert texts["(this line is out of order on purpose: 12:30 AM is after midnight)"].sent_at == ms(2023, 1, 5, 5, 30)
    photo, audio, omitted = (m for m in rows if m.message_type in ("image", "audio"))
    assert (photo.media_id, photo.media_mime_type) == ("00000012-PHOTO-2023-01-13-20-01-09.jpg", "image/jpeg")
    assert audio.media_id == "00000013-AUDIO-2023-01-13-20-01-30.opus" and audio.message_type == "audio"
    assert omitted.media_id is None and omitted.sender_name == "Ana"
    assert set(export.attachments) == {photo.media_id, audio.media_id}
    assert texts["I'll bring snacks"].direction == "out"
    assert rows[-1].message_type == "revoke"
    assert not any("\u200e" in (m.text or "") + (m.sender_name or "") for m in rows)


def test_android_german_dots():
    export = wa("WhatsApp Chat mit Jonas.txt", zone=ZoneInfo("Europe/Berlin"), me="Praxis Weber")
    assert export.date_order == "dmy" and export.chat == "Jonas"
    assert [m.message_type for m in export.messages] == ["system", "text", "text", "text", "text"]
    assert export.messages[1].sent_at == ms(2023, 4, 3, 16, 6)  # CEST
    assert export.messages[3].direction == "out" and export.messages[1].sender_phone is None


def test_android_spanish_a_m_p_m_crlf_and_unreadable_lines():
    export = wa("WhatsApp Chat with Lucía.txt", me="Tienda")
    assert export.unreadable == [(1, "garbage before the first message"),
                                 (6, "32/3/2024, 11:59 p. m. - Lucía: a date that is no date")]
    texts = by_text(export)
    assert texts["Buenos días"].sent_at == ms(2024, 3, 7, 8, 5)  # 9:05 a. m. CET
    assert texts["¿Tienen talla 38?"].sent_at == ms(2024, 3, 7, 11, 40)  # 12:40 p. m. is after noon
    assert texts["¡Gracias!"].sent_at == ms(2024, 3, 31, 21, 59)  # CEST from March 31st
    assert texts["Sí, en negro"].direction == "out"


OLDER_IOS = """\
[1.1.2019, 12.00.00] Jane Doe: Messages to this chat and calls are now secured with end-to-end encryption.
[1.1.2019, 12.00.05] Jane Doe: Hello \U0001f604
[1.1.2019, 12.01.00] Me: Hey!
P.S. Nice emoji \U0001f440
[1.1.2019, 12.02.00] Jane Doe: test_document \u2022 2 pages document omitted
[1.1.2019, 12.03.00] Jane Doe:  Helsinki (Helsinki): https://maps.google.com/?q=60.167850,24.952965
[1.1.2019, 12.04.00] Jane Doe:  Location: https://maps.google.com/?q=60.167850,-24.952965
[1.1.2019, 12.05.00] Jane Doe: Contact card omitted
[13.1.2019, 09.00.00] Jane Doe: This message was deleted.
[13.1.2019, 09.01.00] Jane Doe: Is the shop at https://maps.google.com/?q=60.1,24.9 open today?
[13.1.2019, 09.02.00] Me: POLL:
Which day?
OPTION: Monday (1 vote)
OPTION: Tuesday (0 votes)
"""


def test_older_ios_notice_documents_locations_contacts_deleted_and_polls():
    """The shapes of an older iOS export (no U+200E marks; en_GB clock with dots), and what every phone writes for
    a shared location, an omitted document or contact card, and a poll."""
    export = whatsapp_export.parse(OLDER_IOS.encode(), "Jane Doe", "k", UTC, me="Me")
    assert export.date_order == "dmy" and export.chat_type == "private" and not export.unreadable
    rows = export.messages
    assert [(m.message_type, m.text) for m in rows] == [
        ("system", "Messages to this chat and calls are now secured with end-to-end encryption."),
        ("text", "Hello \U0001f604"),
        ("text", "Hey!\nP.S. Nice emoji \U0001f440"),
        ("document", None),
        ("location", None),  # a place: its name and the link stay in the raw export
        ("location", None),  # a live location
        ("contacts", None),
        ("revoke", None),
        ("text", "Is the shop at https://maps.google.com/?q=60.1,24.9 open today?"),  # a link in a sentence
        ("poll", "Which day?"),
    ]
    assert rows[0].sender_id is None and rows[1].sender_id == "Jane Doe" and rows[2].direction == "out"
    assert rows[1].sent_at == ms(2019, 1, 1, 12, 0, 5) and rows[7].sent_at == ms(2019, 1, 13, 9)


def test_android_locations_contact_cards_and_audio_without_a_suffix():
    text = ("15/01/2023, 10:05 - Luc\u00eda: Helsinki\nHelsinki\n"
            "location: https://maps.google.com/?q=60.167850494384766,24.952964782714844\n"
            "15/01/2023, 10:06 - Luc\u00eda: live location shared\n"
            "15/01/2023, 10:07 - Luc\u00eda: AUD-20230115-WA0000. (file attached)\n"
            "15/01/2023, 10:08 - Luc\u00eda: Jonas Weber.vcf (file attached)\n"
            "15/01/2023, 10:09 - Luc\u00eda: <attached: 00000021-Jonas Weber.vcf>\n")
    rows = whatsapp_export.parse(text.encode(), "Luc\u00eda", "k", UTC).messages
    assert [(m.message_type, m.media_id) for m in rows] == [
        ("location", None), ("location", None), ("audio", "AUD-20230115-WA0000."), ("contacts", "Jonas Weber.vcf"),
        ("contacts", "00000021-Jonas Weber.vcf")]


def test_attachments_in_any_language_are_known_by_the_files_beside_the_text():
    """An export with media names its files in the phone's language; where the .zip holds the named file, that is
    an attachment whatever the words; without the file, the line stays text (it may be one a person typed)."""
    text = ("15/01/2023, 10:00 - Luc\u00eda: IMG-20230115-WA0003.jpg (archivo adjunto)\nla foto\n"
            "[15.01.23, 10:01:00] Jonas: \u200e<Anhang: 00000021-PHOTO-2023-01-15-10-01-00.jpg>\n"
            "15/01/2023, 10:02 - Luc\u00eda: menu.pdf (archivo adjunto)\n"
            "15/01/2023, 10:03 - Luc\u00eda: see <this: thing> (not a file)\n")
    files = {"IMG-20230115-WA0003.jpg", "00000021-PHOTO-2023-01-15-10-01-00.jpg", "menu.pdf"}
    rows = whatsapp_export.parse(text.encode(), "Luc\u00eda", "k", UTC, files=files).messages
    assert [(m.message_type, m.media_id, m.text) for m in rows] == [
        ("image", "IMG-20230115-WA0003.jpg", "la foto"), ("image", "00000021-PHOTO-2023-01-15-10-01-00.jpg", None),
        ("document", "menu.pdf", None), ("text", None, "see <this: thing> (not a file)")]
    alone = whatsapp_export.parse(text.encode(), "Luc\u00eda", "k", UTC).messages  # the .txt without its files
    assert [m.message_type for m in alone] == ["text"] * 4


def test_ambiguous_dates_need_the_order_given():
    with pytest.raises(whatsapp_export.DateOrderUnknown, match="--date-order dmy or --date-order mdy"):
        wa("WhatsApp Chat with Ana.txt")
    assert wa("WhatsApp Chat with Ana.txt", zone=UTC, date_order="mdy").messages[0].sent_at == ms(2023, 1, 2, 10)
    assert wa("WhatsApp Chat with Ana.txt", zone=UTC, date_order="dmy").messages[0].sent_at == ms(2023, 2, 1, 10)


def test_date_order_from_which_reading_runs_forward_in_time():
    text = "01/02/23, 10:00 - Ana: a\n02/01/23, 10:00 - Ana: b\n"  # dmy: Feb 1 then Jan 2 (backwards)
    export = whatsapp_export.parse(text.encode(), "Ana", "k", UTC)
    assert export.date_order == "mdy"


@pytest.mark.parametrize(("line", "order", "expected"), [
    ("2023-01-15, 10:30 - Ana: x", "ymd", (2023, 1, 15, 10, 30)),
    ("15-01-2023 10:30 - Ana: x", "dmy", (2023, 1, 15, 10, 30)),
    ("[15.01.23 10:30:05] Ana: x", "dmy", (2023, 1, 15, 10, 30, 5)),
    ("1/15/23, 10:30\u00a0PM - Ana: x", "mdy", (2023, 1, 15, 22, 30)),
    ("1/15/23, 12:05 am - Ana: x", "mdy", (2023, 1, 15, 0, 5)),
    ("[1/15/23, 1:05:00 p.m.] Ana: x", "mdy", (2023, 1, 15, 13, 5)),
    ("15/01/2023 \u00e0 23:59 - Chlo\u00e9: salut", "dmy", (2023, 1, 15, 23, 59)),  # French
    ("15.1.2023 klo 23.59 - Aino: moi", "dmy", (2023, 1, 15, 23, 59)),  # Finnish
    ("2023. 1. 15. \uc624\ud6c4 11:59 - \ud64d\uae38\ub3d9: x", "ymd", (2023, 1, 15, 23, 59)),  # Korean, 오후 (PM)
    ("2023/1/15 \u4e0a\u534812:05 - \u5f20\u4e09: x", "ymd", (2023, 1, 15, 0, 5)),  # Chinese, 上午 (AM)
    ("[2023/01/15 \u5348\u5f8c1:05:09] \u5c71\u7530: x", "ymd", (2023, 1, 15, 13, 5, 9)),  # Japanese, 午後 (PM)
    ("\u0661\u0665/\u0660\u0661/\u0662\u0660\u0662\u0663, \u0661\u0660:\u0663\u0660 - x: y", "dmy",
     (2023, 1, 15, 10, 30)),  # Arabic-Indic digits
])
def test_layouts_and_clocks(line, order, expected):
    export = whatsapp_export.parse(line.encode(), "Ana", "k", UTC)
    assert export.date_order == order and export.messages[0].sent_at == ms(*expected)


def test_a_later_export_gives_the_same_ids_to_the_same_messages():
    data = (EXPORTS / "WhatsApp Chat with +34 612 34 56 78.txt").read_bytes()
    first = whatsapp_export.parse(data[: data.index(b"15/01/2023, 23:59")], "+34 612 34 56 78", "a", MADRID)
    later = whatsapp_export.parse(data, "+34 612 34 56 78", "b", MADRID)
    assert [m.message_id for m in first.messages] == [m.message_id for m in later.messages[: len(first.messages)]]
    assert len({m.message_id for m in later.messages}) == len(later.messages) - 1  # an edit shares its message's id


def test_the_same_text_twice_in_a_minute_is_two_messages():
    export = whatsapp_export.parse(b"1/15/23, 10:30 - Ana: ok\n1/15/23, 10:30 - Ana: ok\n", "Ana", "k", UTC)
    assert len({m.message_id for m in export.messages}) == 2


@pytest.mark.parametrize(("name", "chat"), [("WhatsApp Chat with Ana.txt", "Ana"),
                                            ("WhatsApp Chat - Ana B.zip", "Ana B"),
                                            ("WhatsApp Chat with +1 555 0100 (1).txt", "+1 555 0100"),
                                            ("Conversa do WhatsApp com Zé.txt", "Zé"), ("_chat.txt", None)])
def test_chat_name_from_the_file_name(name, chat):
    assert whatsapp_export.chat_name_of(name) == chat


# --- Telegram ------------------------------------------------------------------------------------------------------


def tg(name: str, **kwargs) -> telegram_export.Export:
    document = json.loads((EXPORTS / name).read_text())
    return telegram_export.parse(document, "imports/source=telegram/x.json", MADRID, **kwargs)


def test_single_chat_supergroup_export():
    export = tg("telegram_single_supergroup.json")
    assert export.chats == ["Shop Chat"]
    assert export.unreadable == ["chat 'Shop Chat', message 'bad': no integer `id` or no readable `date`"]
    rows = {(m.message_id, m.is_edit): m for m in export.messages}
    get = lambda n, edit=False: rows[(f"-1001234567890:{n}", edit)]  # noqa: E731
    kinds = {n: get(n).message_type for n in range(1, 21)}
    assert kinds == {1: "service", 2: "text", 3: "text", 4: "text", 5: "text", 6: "photo", 7: "voice", 8: "video",
                     9: "sticker", 10: "document", 11: "animation", 12: "audio", 13: "video_note", 14: "poll",
                     15: "location", 16: "venue", 17: "contact", 18: "text", 19: "service", 20: "text"}
    assert all(m.chat_id == "-1001234567890" and m.chat_type == "supergroup" and m.chat_title == "Shop Chat"
               for m in export.messages)
    assert get(2).sent_at == ms(2023, 3, 1, 9, 0) and get(2).sender_id == "111" and get(2).sender_name == "Ana López"
    assert get(3).text == "Hello world see https://example.com" and get(3).reply_to_message_id == "-1001234567890:2"
    assert get(4, True).edited_at == ms(2023, 3, 1, 9, 5) and get(4).edited_at is None
    assert get(4, True).text == get(4).text == "fixed typo"  # the export holds the last version only
    assert get(5).sender_name == "Ben" and get(5).text == "forwarded news"  # a forward's sender is the forwarder
    assert (get(6).media_id, get(6).text) == ("photos/photo_1@01-03-2023_10-04-00.jpg", "look")
    assert (get(7).media_id, get(7).media_mime_type, get(7).text) == (
        "voice_messages/audio_1@01-03-2023_10-05-00.ogg", "audio/ogg", None)
    assert get(8).media_id is None and get(8).media_mime_type == "video/mp4"  # media not exported
    assert all(get(n).text is None for n in (1, 9, 14, 15, 16, 17, 19))  # no poll question, emoji, address, card
    assert get(18).sender_id == "-1001234567890" and get(18).sender_name == "Shop"  # posted as the channel
    assert get(20).sent_at == ms(2023, 3, 2, 0, 30, tz=MADRID)  # no date_unixtime: local time in --tz
    assert len(export.messages) == 21


def test_full_export_with_left_chats_and_the_owner_as_out():
    export = tg("telegram_full_export.json")
    assert export.chats == ["Ana López", "Team", "Old News"]  # Saved Messages has no messages in this export
    rows = {m.message_id: m for m in export.messages}
    assert rows["111:501"].chat_type == "private" and rows["111:501"].chat_title is None
    assert rows["111:501"].direction == "in" and rows["111:502"].direction == "out"
    assert rows["111:502"].reply_to_message_id == "111:501"
    assert rows["-4444:8"].chat_type == "group" and rows["-4444:8"].text == "@owner ready"
    assert rows["-4444:7"].message_type == "service" and rows["-4444:7"].sender_id == "999"
    assert rows["-100777:3"].chat_type == "channel" and rows["-100777:3"].sender_id == "-100777"


def test_me_marks_a_sender_out():
    export = tg("telegram_single_supergroup.json", me="Ben")
    assert {m.sender_name for m in export.messages if m.direction == "out"} == {"Ben"}


@pytest.mark.parametrize(("document", "message"), [
    ([], "not an object"), ({"about": "x"}, "neither `messages`"), ({"name": "x", "messages": {}}, "neither")])
def test_not_an_export(document, message):
    with pytest.raises(telegram_export.NotAnExport, match=message):
        telegram_export.parse(document, "k", UTC)


def test_odd_unix_times_fall_back_to_the_local_date_or_are_reported():
    def chat(*messages):
        return {"name": "x", "type": "personal_chat", "id": 5, "messages": [
            {"id": i, "type": "message", "text": "t", **m} for i, m in enumerate(messages, 1)]}

    local = {"date": "2023-01-01T10:00:00"}
    new_york = ZoneInfo("America/New_York")
    export = telegram_export.parse(chat(
        {**local, "date_unixtime": "\u00b2"},  # a digit, not a number
        {**local, "date_unixtime": "\u0661\u0666\u0667\u0662\u0665\u0666\u0667\u0662\u0660\u0660"},  # Arabic-Indic
        {**local, "date_unixtime": "99999999999999999999"},  # past 9999
        {"date": "9999-12-31T23:59:59"},  # past 9999 in UTC
        {**local, "edited": "0001-01-01T00:00:00"},  # an edit before 1970: no time the tables hold, no edit row
    ), "k", new_york)
    ten = ms(2023, 1, 1, 10, tz=new_york)
    assert [(r[1], r[2], r[7]) for r in export.rows] == [("5:1", ten, None), ("5:2", 1672567200000, None),
                                                         ("5:3", ten, None), ("5:5", ten, None)]
    assert export.unreadable == ["chat 'x', message 4: no integer `id` or no readable `date`"]


def test_bot_api_ids():
    assert telegram_export.bot_api_chat_id(1234567890, "supergroup") == -1001234567890
    assert telegram_export.bot_api_chat_id(1234567890, "channel") == -1001234567890
    assert telegram_export.bot_api_chat_id(4444, "group") == -4444
    assert telegram_export.bot_api_chat_id(111, "private") == 111
    assert telegram_export.bot_api_chat_id(-1001234567890, "supergroup") == -1001234567890
    assert [telegram_export.bot_api_peer_id(v) for v in ("user1", "channel2", "chat3", "bot4", None)] == [
        "1", "-1002", "-3", None, None]


# --- the rows' Parquet files ---------------------------------------------------------------------------------------


def test_the_import_writes_the_files_the_etl_writer_would():
    """`rows.parquet_by_day` converts and sorts all days at once: each day's file must still be, byte for byte,
    what `etl.to_parquet` writes for that day's rows (the same schema, order and writer options)."""
    from collections import Counter, defaultdict

    from chalicelib import etl
    from chatlake.imports import rows as import_rows

    export_rows = (tg("telegram_full_export.json").rows + tg("telegram_single_supergroup.json").rows
                   + wa("_chat.txt", chat="Book Club").rows
                   + wa("WhatsApp Chat with +34 612 34 56 78.txt", me="Shop Owner").rows)
    mixed = export_rows[1::2] + export_rows[::2]  # days interleaved, not in file order
    by_day = defaultdict(list)
    for r in mixed:
        by_day[import_rows.day_of(r[import_rows.SENT_AT])].append(r)
    def days(rows):
        return Counter(r[import_rows.SENT_AT] // import_rows.DAY_MS for r in rows)

    written = list(import_rows.parquet_by_day(mixed, days(mixed)))
    assert [(day, n) for day, _, n in written] == sorted((d, len(v)) for d, v in by_day.items())
    assert len(written) >= 5 and any(n == 1 for _, _, n in written) and any(n > 5 for _, _, n in written)
    for day, body, _ in written:
        assert body == etl.to_parquet("messages", import_rows.as_messages(by_day[day])), day
    # one chat: columns with one value throughout (chat id, type, title; fields never filled)
    one_chat = tg("telegram_single_supergroup.json").rows
    [(day, body, n)] = import_rows.parquet_by_day(one_chat, days(one_chat))
    assert n == len(one_chat) and body == etl.to_parquet("messages", import_rows.as_messages(one_chat))
    assert list(import_rows.parquet_by_day([], Counter())) == []
    with pytest.raises(ValueError, match="counted by day"):
        list(import_rows.parquet_by_day(one_chat, Counter({day.toordinal(): 1})))


def test_header_times_converted_once_per_date_match_the_time_by_time_conversion():
    """`_stamps` (a date checked once per distinct date, the clock in arithmetic) gives what a datetime made
    header by header gives, across DST changes both ways, AM/PM, and headers that make no date."""
    zone = ZoneInfo("Europe/Madrid")
    fields: dict[str, tuple] = {}
    for day, month in ((26, 3), (29, 10), (31, 12), (29, 2), (30, 2), (13, 13), (0, 1)):
        for hour in ("0", "01", "1", "2", "02", "3", "11", "12", "13", "23", "24"):
            for minute, second, ampm in (("00", None, None), ("30", "59", None), ("59", "60", None),
                                         ("15", None, "p"), ("15", None, "A"), ("61", None, None)):
                f = (str(day), "/", str(month), "2023" if day != 29 else "24", hour, minute, second, ampm, None)
                fields[repr(f)] = f
    expected = {}
    for header, f in fields.items():
        local = whatsapp_export._local_time(f, "dmy")
        expected[header] = None if local is None else (local.isoformat(), whatsapp_export._utc_millis(local, zone))
    assert whatsapp_export._stamps(fields, "dmy", zone) == expected
    assert sum(v is not None for v in expected.values()) > 100 and None in expected.values()


@pytest.mark.parametrize("writers", [1, 2])
def test_the_days_files_come_back_in_day_order_whatever_the_writer_threads(monkeypatch, writers):
    """The days' files are made on threads, a few ahead: each comes back with its own day, in day order."""
    from collections import Counter

    from chatlake.imports import rows as import_rows

    export_rows = tg("telegram_full_export.json").rows + wa("_chat.txt", chat="Book Club").rows
    days = Counter(r[import_rows.SENT_AT] // import_rows.DAY_MS for r in export_rows)
    expected = list(import_rows.parquet_by_day(export_rows, days))
    monkeypatch.setattr(import_rows, "WRITERS", writers)
    got = list(import_rows.parquet_by_day(export_rows, days))
    assert len(got) > 2 * writers + 1 and got == expected
    assert [day for day, _, _ in got] == sorted(import_rows.day_of(d * import_rows.DAY_MS) for d in days)
