"""The Telegram parser (contract 3.1) against the byte-exact corpus in tests/payloads/telegram/."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.schema import Message, Parsed
from chalicelib.telegram import parse
from chalicelib.values import MAX_UNIX_SECONDS
from tests.conftest import PAYLOADS

CORPUS = PAYLOADS / "telegram"
FILES = sorted(p.stem for p in CORPUS.glob("*.json"))
KEY = "raw/source=telegram/dt=2026-11-24/0123abcd.json"
T = 1795511700  # the corpus's 2026-11-24T09:15:00Z
MS = 1000

MESSAGE_FILES = {
    "private_text", "private_text_entities", "group_text", "supergroup_forum_topic", "supergroup_forum_reply",
    "channel_post", "edited_message", "edited_channel_post", "business_message", "edited_business_message",
    "photo_caption", "video", "animation", "audio", "voice", "video_note", "document", "sticker", "location",
    "venue", "contact", "poll", "dice", "forwarded", "forwarded_legacy", "anonymous_admin",
    "linked_channel_autoforward", "service_new_members", "service_left_member", "service_pinned",
    "service_title_changed", "service_forum_topic_created", "reply_external", "guest_message",
    "unknown_future_kind", "unknown_update_message",
}  # fmt: skip
NON_MESSAGE_FILES = {
    "callback_query", "inline_query", "chosen_inline_result", "my_chat_member", "chat_member",
    "chat_join_request", "message_reaction", "message_reaction_count", "poll_answer", "poll_update",
    "business_connection", "deleted_business_messages",
}  # fmt: skip
BAD_FILES = {"no_update_id", "message_without_chat", "message_without_date", "unknown_update_kind"}

ANNA = {
    "chat_id": "5113297481",
    "chat_type": "private",
    "chat_title": None,
    "sender_id": "5113297481",
    "sender_name": "Anna Müller",
    "sender_username": "anna_mueller",
}
DIMA_IN_GROUP = {
    "chat_id": "-4012345678",
    "chat_type": "group",
    "chat_title": "Familie Müller 🏡",
    "sender_id": "6021458833",
    "sender_name": "Дмитрий Иванов",
    "sender_username": "dima_iv",
}
CHANNEL = {
    "chat_id": "-1001122334455",
    "chat_type": "channel",
    "chat_title": "Chatlake News 📰",
    "sender_id": "-1001122334455",
    "sender_name": "Chatlake News 📰",
    "sender_username": None,  # a sender_chat gives id and title; sender_username is a person's @username
}
SOFIA_BUSINESS = {
    "chat_id": "1254876390",
    "chat_type": "private",
    "chat_title": None,
    "sender_id": "1254876390",
    "sender_name": "Sofía García",
    "sender_username": "sofiagarcia",
}


def load(name: str) -> dict[str, Any]:
    """A corpus file exactly as Telegram posts it, decoded as the ETL decodes it."""
    return json.loads((CORPUS / f"{name}.json").read_bytes())


def run(name: str) -> Parsed:
    return parse(load(name), KEY)


def only_row(name: str) -> Message:
    parsed = run(name)
    assert parsed.problems == []
    assert len(parsed.messages) == 1, parsed.messages
    return parsed.messages[0]


def row(**columns: Any) -> Message:
    """An expected row: every column given by the test except the ones that are the same for all Telegram rows."""
    return Message(source="telegram", raw_key=KEY, sender_phone=None, direction="in", account_id=None, **columns)


def update(message: dict[str, Any], kind: str = "message") -> dict[str, Any]:
    return {"update_id": 1, kind: message}


def minimal(**fields: Any) -> dict[str, Any]:
    """A small valid message; fields given replace or add to it (None removes one)."""
    msg: dict[str, Any] = {
        "message_id": 7,
        "from": {"id": 42, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": 42, "first_name": "Ada", "type": "private"},
        "date": T,
        "text": "hi",
    }
    for key, value in fields.items():
        if value is None:
            msg.pop(key, None)
        else:
            msg[key] = value
    return msg


def one(message: dict[str, Any], kind: str = "message") -> Message:
    parsed = parse(update(message, kind), KEY)
    assert parsed.problems == []
    assert len(parsed.messages) == 1
    return parsed.messages[0]


def one_problem(payload: Any) -> str:
    parsed = parse(payload, KEY)
    assert parsed.messages == []
    assert parsed.statuses == []
    assert len(parsed.problems) == 1, parsed.problems
    return parsed.problems[0]


# --- the corpus itself -------------------------------------------------------------------------------------


def test_corpus_covers_every_case_and_nothing_unclassified():
    assert set(FILES) == MESSAGE_FILES | NON_MESSAGE_FILES | BAD_FILES
    assert (CORPUS / "README.md").is_file()


@pytest.mark.parametrize("name", FILES)
def test_corpus_files_are_serialised_as_telegram_does(name):
    """Compact, ASCII-only with \\uXXXX escapes (emoji as surrogate pairs), '/' left as is."""
    body = (CORPUS / f"{name}.json").read_bytes()
    assert body.isascii()
    assert json.dumps(json.loads(body), ensure_ascii=True, separators=(",", ":")).encode() == body
    assert b"\\/" not in body


def test_corpus_escapes_emoji_as_surrogate_pairs():
    body = (CORPUS / "private_text.json").read_bytes()
    assert b"\\ud83d\\udc4b\\ud83d\\ude00" in body  # 👋😀
    assert b"\\u00fc" in body  # ü


# --- full rows ---------------------------------------------------------------------------------------------


def test_private_text_full_row():
    assert only_row("private_text") == row(
        message_id="5113297481:1201",
        sent_at=T * MS,
        edited_at=None,
        message_type="text",
        text="Grüße aus München! Привет 👋😀 — ¿qué tal? 日本語",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
        **ANNA,
    )


def test_private_text_with_entities_keeps_the_text_as_typed():
    assert only_row("private_text_entities") == row(
        message_id="5113297481:1202",
        sent_at=(T + 60) * MS,
        edited_at=None,
        message_type="text",
        text="/start promo_2026 Preise: https://example.com/preise?ref=tg @chatlake_support #rabatt",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
        **ANNA,
    )


def test_group_reply_full_row():
    assert only_row("group_text") == row(
        message_id="-4012345678:388",
        sent_at=(T + 120) * MS,
        edited_at=None,
        message_type="text",
        text="Я принесу! 🎂",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id="-4012345678:385",
        is_edit=False,
        **DIMA_IN_GROUP,
    )


def test_forum_topic_message_is_not_a_reply_to_the_topic_root():
    assert only_row("supergroup_forum_topic") == row(
        message_id="-1002233445566:57",
        sent_at=(T + 180) * MS,
        edited_at=None,
        chat_id="-1002233445566",
        chat_type="supergroup",
        chat_title="Chatlake Community",
        sender_id="1254876390",
        sender_name="Sofía García",
        sender_username="sofiagarcia",
        message_type="text",
        text="¿Podrían añadir exportación a CSV?",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
    )


def test_forum_topic_real_reply_keeps_its_reply_id():
    got = only_row("supergroup_forum_reply")
    assert got.reply_to_message_id == "-1002233445566:57"
    assert got.sender_username is None  # Kenji has no @username
    assert got.sender_name == "健二"


def test_channel_post_full_row():
    assert only_row("channel_post") == row(
        message_id="-1001122334455:311",
        sent_at=(T + 300) * MS,
        edited_at=None,
        message_type="text",
        text="Neu in Version 2.4: Export nach Parquet 🚀",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
        **CHANNEL,
    )


def test_edited_message_full_row_keeps_the_original_date():
    assert only_row("edited_message") == row(
        message_id="5113297481:1201",
        sent_at=T * MS,
        edited_at=(T + 420) * MS,
        message_type="text",
        text="Grüße aus München! Привет 👋😀 (korrigiert)",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=True,
        **ANNA,
    )


def test_edited_channel_post_full_row():
    assert only_row("edited_channel_post") == row(
        message_id="-1001122334455:311",
        sent_at=(T + 300) * MS,
        edited_at=(T + 480) * MS,
        message_type="text",
        text="Neu in Version 2.4.1: Export nach Parquet 🚀",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=True,
        **CHANNEL,
    )


def test_business_message_and_its_edit_full_rows():
    original = row(
        message_id="1254876390:2077",
        sent_at=(T + 540) * MS,
        edited_at=None,
        message_type="text",
        text="Hola, ¿cuándo abre la tienda mañana? 🛍️",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
        **SOFIA_BUSINESS,
    )
    assert only_row("business_message") == original
    edit = only_row("edited_business_message")
    assert edit == row(
        message_id="1254876390:2077",
        sent_at=(T + 540) * MS,
        edited_at=(T + 600) * MS,
        message_type="text",
        text="Hola, ¿a qué hora abre la tienda mañana? 🛍️",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=True,
        **SOFIA_BUSINESS,
    )
    # The original and its edit are distinct rows of the unique key (source, message_id, edited_at).
    assert (original.message_id, original.edited_at) != (edit.message_id, edit.edited_at)


def test_photo_full_row_takes_the_largest_size_and_the_caption():
    assert only_row("photo_caption") == row(
        message_id="5113297481:1203",
        sent_at=(T + 660) * MS,
        edited_at=None,
        message_type="photo",
        text="Unser neues Büro 🏢✨",
        media_id="AgACAgIAAxkBAAICY2Vh3AAHnZUV0k5sbW9C1rX8AAWQ4yGqhAAJx2DEbAAFx8Uq9AAEyAQADAgADeQADNgQ",
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
        **ANNA,
    )


def test_anonymous_admin_is_the_group_not_the_placeholder_bot():
    assert only_row("anonymous_admin") == row(
        message_id="-1001987654321:5021",
        sent_at=(T + 1560) * MS,
        edited_at=None,
        chat_id="-1001987654321",
        chat_type="supergroup",
        chat_title="Chatlake Nutzer – Support",
        sender_id="-1001987654321",
        sender_name="Chatlake Nutzer – Support",
        sender_username=None,
        message_type="text",
        text="Bitte keine Werbung in dieser Gruppe. 🙏",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
    )


def test_linked_channel_autoforward_is_sent_by_the_channel_in_the_discussion_group():
    assert only_row("linked_channel_autoforward") == row(
        message_id="-1001122334456:812",
        sent_at=(T + 302) * MS,
        edited_at=None,
        chat_id="-1001122334456",
        chat_type="supergroup",
        chat_title="Chatlake News – Kommentare",
        sender_id="-1001122334455",
        sender_name="Chatlake News 📰",
        sender_username=None,
        message_type="text",
        text="Neu in Version 2.4: Export nach Parquet 🚀",
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
    )


def test_service_message_full_row():
    assert only_row("service_new_members") == row(
        message_id="-1001987654321:5022",
        sent_at=(T + 1620) * MS,
        edited_at=None,
        chat_id="-1001987654321",
        chat_type="supergroup",
        chat_title="Chatlake Nutzer – Support",
        sender_id="7288410054",
        sender_name="健二",
        sender_username=None,
        message_type="service",
        text=None,
        media_id=None,
        media_mime_type=None,
        reply_to_message_id=None,
        is_edit=False,
    )


# --- each rule ---------------------------------------------------------------------------------------------

KINDS = [
    # file, message_type, text, media_id prefix (None: no media), media_mime_type
    ("video", "video", "Demo vom Messestand", "BAACAgIAAxkBAAICZmVhZ9sAAa1x", "video/mp4"),
    ("animation", "animation", None, "CgACAgQAAxkBAAICaGVhaA1AAbv9", "video/mp4"),
    ("audio", "audio", None, "CQACAgIAAxkBAAICaWVhaEaAAbFj", "audio/mpeg"),
    ("voice", "voice", None, "AwACAgIAAxkBAAICamVhaG0AAT0A", "audio/ogg"),
    ("video_note", "video_note", None, "DQACAgIAAxkBAAICa2VhaI0AAcJ8", None),
    ("document", "document", "Rechnung für November", "BQACAgIAAxkBAAICbGVhaLQAAWf7", "application/pdf"),
    ("sticker", "sticker", None, "CAACAgIAAxkBAAICbWVhaNsAAZ3k", None),
    ("location", "location", None, None, None),
    ("venue", "venue", None, None, None),
    ("contact", "contact", None, None, None),
    ("poll", "poll", None, None, None),
    ("dice", "dice", None, None, None),
    ("service_left_member", "service", None, None, None),
    ("service_pinned", "service", None, None, None),
    ("service_title_changed", "service", None, None, None),
    ("service_forum_topic_created", "service", None, None, None),
    ("guest_message", "text", "@chatlake_demo_bot 今日のレポート", None, None),
    ("unknown_future_kind", "hologram", None, "HoACAgIAAxkBAAICcGVha2QAAQ", "model/gltf-binary"),
]


@pytest.mark.parametrize(("name", "message_type", "text", "media", "mime"), KINDS)
def test_message_type_text_and_media_of_each_kind(name, message_type, text, media, mime):
    got = only_row(name)
    assert got.message_type == message_type
    assert got.text == text
    if media is None:
        assert got.media_id is None
    else:
        assert got.media_id is not None and got.media_id.startswith(media)
    assert got.media_mime_type == mime


def test_text_is_never_a_poll_question_sticker_emoji_file_name_contact_or_place():
    """Only what a person typed: the corpus has a question, an emoji, a file name, a card and an address."""
    for name in ("poll", "sticker", "audio", "contact", "location", "venue", "dice"):
        assert only_row(name).text is None, name


@pytest.mark.parametrize("order", [("animation", "document"), ("document", "animation")])
def test_animation_wins_over_document_in_any_key_order(order):
    msg = load("animation")["message"]
    reordered = {k: v for k, v in msg.items() if k not in order} | {k: msg[k] for k in order}
    assert one(reordered).message_type == "animation"


@pytest.mark.parametrize("order", [("location", "venue"), ("venue", "location")])
def test_venue_wins_over_location_in_any_key_order(order):
    msg = load("venue")["message"]
    reordered = {k: v for k, v in msg.items() if k not in order} | {k: msg[k] for k in order}
    assert one(reordered).message_type == "venue"


def test_document_alone_is_a_document():
    msg = load("animation")["message"]
    del msg["animation"]
    assert one(msg).message_type == "document"


def test_largest_photo_by_area_ties_go_to_the_last_and_junk_sizes_are_skipped():
    photo = [
        {"file_id": "big-first", "width": 1280, "height": 960},
        {"file_id": "small", "width": 90, "height": 67},
        "not a size",
        {"file_id": 12345, "width": 5000, "height": 5000},
        {"width": 4000, "height": 4000},
        {"file_id": "big-last", "width": 960, "height": 1280},
        {"file_id": "no-dimensions"},
    ]
    assert one(minimal(text=None, photo=photo)).media_id == "big-last"
    assert one(minimal(text=None, photo=[{"file_id": "only", "width": True}])).media_id == "only"
    assert one(minimal(text=None, photo=[])).media_id is None
    assert one(minimal(text=None, photo={"file_id": "x"})).media_id is None


def test_empty_text_and_caption_are_null_and_caption_is_the_fallback():
    assert one(minimal(text="")).text is None
    assert one(minimal(text=None, photo=[{"file_id": "p"}], caption="")).text is None
    assert one(minimal(text=None, photo=[{"file_id": "p"}], caption="look")).text == "look"
    assert one(minimal(text="", caption="typed")).text == "typed"
    assert one(minimal(text=["not", "text"])).text is None


def test_sender_from_user_name_is_trimmed_and_missing_parts_are_null():
    def sender(user: Any) -> tuple[str | None, str | None, str | None]:
        got = one(minimal(**{"from": user}))
        return got.sender_id, got.sender_name, got.sender_username

    assert sender({"id": 1, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"}) == (
        "1",
        "Ada Lovelace",
        "ada",
    )
    assert sender({"id": 1, "last_name": "Lovelace"}) == ("1", "Lovelace", None)
    assert sender({"id": 1, "first_name": " Ada ", "last_name": ""}) == ("1", "Ada", None)
    assert sender({"id": 1, "first_name": "", "username": ""}) == ("1", None, None)
    assert sender({"id": "1", "first_name": "Ada"}) == (None, "Ada", None)
    assert sender(["not", "a", "user"]) == (None, None, None)
    assert sender(None) == (None, None, None)


def test_sender_chat_wins_over_from_with_its_id_and_title():
    group = {"id": -100555, "title": "Quiet Group", "type": "supergroup"}
    got = one(minimal(chat=group, sender_chat=group, **{"from": {"id": 1087968824, "first_name": "Group"}}))
    assert (got.sender_id, got.sender_name, got.sender_username) == ("-100555", "Quiet Group", None)
    channel = {"id": -100777, "title": "News", "username": "news", "type": "channel"}
    got = one(minimal(chat=group, sender_chat=channel))
    assert (got.sender_id, got.sender_name, got.sender_username) == ("-100777", "News", None)
    # A sender_chat that is not an object is ignored: the sender is `from`.
    got = one(minimal(sender_chat="junk"))
    assert got.sender_id == "42"


def test_chat_title_is_null_for_private_chats_even_if_given():
    assert one(minimal(chat={"id": 42, "type": "private", "title": "odd"})).chat_title is None
    assert one(minimal(chat={"id": -5, "type": "group", "title": "G"})).chat_title == "G"
    assert one(minimal(chat={"id": -5, "type": "group"})).chat_title is None


def test_chat_type_missing_is_private_for_user_ids_and_unknown_for_others():
    # Private chats are what PII hashing must catch, so a positive (user) id is taken as private.
    assert one(minimal(chat={"id": 42})).chat_type == "private"
    assert one(minimal(chat={"id": -100123, "type": 5})).chat_type == "unknown"
    assert one(minimal(chat={"id": -100123, "type": "channel"})).chat_type == "channel"


def test_reply_uses_the_replied_messages_own_chat_when_given_else_this_chat():
    assert one(minimal(reply_to_message={"message_id": 3, "chat": {"id": -99}})).reply_to_message_id == "-99:3"
    assert one(minimal(reply_to_message={"message_id": 3})).reply_to_message_id == "42:3"
    assert one(minimal(reply_to_message={"message_id": 3, "chat": "x"})).reply_to_message_id == "42:3"
    assert one(minimal(reply_to_message={"message_id": "3"})).reply_to_message_id is None
    assert one(minimal(reply_to_message=[1])).reply_to_message_id is None


def test_reply_to_another_chat_comes_from_external_reply():
    assert only_row("reply_external").reply_to_message_id == "-1001122334455:311"
    # Without the other chat's id there is no id of the form <chat_id>:<message_id> to give.
    assert one(minimal(external_reply={"origin": {"type": "hidden_user"}, "message_id": 5})).reply_to_message_id is None


def test_forward_sender_is_the_forwarder_and_sent_at_its_own_date():
    for name, date in (("forwarded", T + 1440), ("forwarded_legacy", T + 1500)):
        got = only_row(name)
        assert (got.sender_id, got.sender_name) == ("5113297481", "Anna Müller")
        assert got.sent_at == date * MS
        assert got.message_type == "text"


@pytest.mark.parametrize("name", ["group_text", "supergroup_forum_reply", "service_pinned", "callback_query"])
def test_nested_messages_never_give_rows_of_their_own(name):
    parsed = run(name)
    assert parsed.problems == []
    assert len(parsed.messages) == (0 if name == "callback_query" else 1)


@pytest.mark.parametrize("name", sorted(NON_MESSAGE_FILES))
def test_non_message_updates_give_no_rows_and_no_problems(name):
    assert run(name) == Parsed()


@pytest.mark.parametrize(
    "kind",
    ["shipping_query", "pre_checkout_query", "purchased_paid_media", "chat_boost", "removed_chat_boost", "managed_bot"],
)
def test_other_non_message_kinds_give_nothing(kind):
    assert parse({"update_id": 5, kind: {"id": "x"}}, KEY) == Parsed()


@pytest.mark.parametrize("name", sorted(MESSAGE_FILES))
def test_constant_columns_of_every_row(name):
    got = only_row(name)
    assert (got.source, got.raw_key, got.direction) == ("telegram", KEY, "in")
    assert got.account_id is None and got.sender_phone is None
    raw = next(value for key, value in load(name).items() if key != "update_id")
    assert got.message_id == f"{raw['chat']['id']}:{raw['message_id']}"
    assert got.sent_at == raw["date"] * MS
    assert got.is_edit == name.startswith("edited_")
    assert (got.edited_at is not None) == got.is_edit


def test_an_edit_without_edit_date_takes_its_date_so_it_stays_distinct_from_the_original():
    got = one(minimal(), kind="edited_message")
    assert (got.is_edit, got.edited_at, got.sent_at) == (True, T * MS, T * MS)
    assert one(minimal(edit_date=T + 5)).edited_at is None  # an original keeps a null edited_at


def test_ids_may_be_whole_floats_but_never_bools_or_strings():
    got = one(minimal(message_id=7.0, chat={"id": 42.0, "type": "private"}, date=float(T)))
    assert (got.message_id, got.chat_id, got.sent_at) == ("42:7", "42", T * MS)
    assert "message_id" in one_problem(update(minimal(message_id=True)))
    assert "message_id" in one_problem(update(minimal(message_id=7.5)))
    assert "chat" in one_problem(update(minimal(chat={"id": "42", "type": "private"})))
    assert "chat" in one_problem(update(minimal(chat=[42])))


@pytest.mark.parametrize("date", ["1795511700", True, 0, -5, 1.5, MAX_UNIX_SECONDS + 1, 10**30, float("inf"), None])
def test_unusable_date_is_one_problem(date):
    problem = one_problem(update(minimal(date=date)))
    assert "date" in problem and "/telegram" in problem


def test_largest_date_that_fits_is_accepted():
    assert one(minimal(date=MAX_UNIX_SECONDS)).sent_at == MAX_UNIX_SECONDS * MS


# --- problems ----------------------------------------------------------------------------------------------


def test_bad_corpus_files_give_exactly_one_readable_problem():
    expected = {
        "no_update_id": "Telegram update has no update_id: this is not a Bot API update; check what posts to /telegram",
        "message_without_chat": (
            "Telegram update 904211050: its message has no usable chat (an object with an integer id), so it gives "
            "no row; Telegram always sends it, so check what posts to /telegram (the raw delivery is kept)"
        ),
        "message_without_date": (
            "Telegram update 904211051: its message has no usable date (positive Unix seconds), so it gives no row; "
            "Telegram always sends it, so check what posts to /telegram (the raw delivery is kept)"
        ),
        "unknown_update_kind": (
            "Telegram update 904211048 is of no kind chatlake knows (its fields: teleport_request); the raw "
            "delivery is kept and can be replayed once chatlake learns this kind"
        ),
    }
    for name, sentence in expected.items():
        assert one_problem(load(name)) == sentence


def test_several_defects_of_one_message_are_one_sentence():
    problem = one_problem({"update_id": 9, "channel_post": {"text": "x"}})
    assert problem.startswith("Telegram update 9: its channel_post has no usable chat")
    assert "date" in problem and "message_id" in problem


@pytest.mark.parametrize(
    ("update_id", "words"),
    [("12", "a string"), (True, "a boolean"), (1.5, "a number"), ({"id": 1}, "an object")],
)
def test_update_id_that_is_not_an_integer(update_id, words):
    problem = one_problem({"update_id": update_id, "message": minimal()})
    assert problem == (
        f"Telegram update has an update_id that is {words}, not an integer: this is not a Bot API update; "
        "check what posts to /telegram"
    )


@pytest.mark.parametrize("update_id", [None, False, "", [], {}])
def test_an_empty_update_id_is_a_missing_one(update_id):
    assert one_problem({"update_id": update_id, "message": minimal()}) == one_problem({"message": minimal()})


@pytest.mark.parametrize(
    ("value", "words"), [([1], "an array"), ("hi", "a string"), (True, "a boolean"), (3, "a number")]
)
def test_message_that_is_not_an_object(value, words):
    assert one_problem({"update_id": 3, "edited_message": value}).startswith(
        f"Telegram update 3: its edited_message is {words}, not a message object, so it gives no row"
    )


@pytest.mark.parametrize("value", [None, False, "", [], {}])
def test_an_empty_update_field_is_an_absent_one(value):
    """Beside a message it changes nothing (no reject for a harmless null); alone, the update has no kind."""
    assert parse({"update_id": 3, "message": minimal(), "edited_message": value}, KEY) == parse(update(minimal()), KEY)
    assert "it has nothing besides update_id" in one_problem({"update_id": 3, "edited_message": value})


def test_update_with_only_update_id_or_many_unknown_fields():
    assert "it has nothing besides update_id" in one_problem({"update_id": 1})
    many = {"update_id": 1, "y" * 100: 1} | {f"field_{i}": {"x": i} for i in range(13)}
    problem = one_problem(many)
    assert f"(its fields: {'y' * 37}..., field_0, field_1," in problem
    assert "field_8 and 4 more)" in problem and "y" * 38 not in problem


@pytest.mark.parametrize("payload", [[], None, "update", 5, [{"update_id": 1}]])
def test_a_delivery_that_is_not_an_object_is_one_problem(payload):
    assert "not a JSON object" in one_problem(payload)


# --- kinds chatlake does not know yet ----------------------------------------------------------------------


def test_an_unknown_update_field_holding_a_message_is_parsed_as_one():
    got = only_row("unknown_update_message")
    assert (got.message_id, got.message_type, got.text) == (
        "5113297481:1217",
        "text",
        "Erinnerung: Zahnarzt um 10 Uhr 🦷",
    )
    edited = one(minimal(edit_date=T + 9), kind="edited_scheduled_message")
    assert (edited.is_edit, edited.edited_at) == (True, (T + 9) * MS)


def test_an_unknown_field_beside_a_known_kind_is_ignored():
    assert parse({"update_id": 1, "callback_query": {"id": "1"}, "new_thing": 1}, KEY) == Parsed()
    parsed = parse({"update_id": 1, "message": minimal(), "new_thing": {"a": 1}}, KEY)
    assert len(parsed.messages) == 1 and parsed.problems == []


def test_unknown_content_field_names_the_kind_and_gives_no_text_from_inside_it():
    got = one(minimal(text=None, hologram={"caption": "inside", "title": "t"}))
    assert (got.message_type, got.text, got.media_id) == ("hologram", None, None)


def test_a_new_metadata_field_does_not_hide_a_known_kind():
    msg = {"message_id": 1, "chat": {"id": 42, "type": "private"}, "date": T}
    msg |= {"sender_rank": "gold", "new_flags": {"a": True}, "text": "still text"}
    assert one(msg).message_type == "text"
    msg = {"message_id": 1, "chat": {"id": 42, "type": "private"}, "date": T, "fresh_flag": True}
    msg |= {"fresh_content": {"x": 1}}
    assert one(msg).message_type == "fresh_content"  # an object beats an earlier scalar
    assert one(minimal(text=None, caption=None)).message_type == "unknown"
    assert one(minimal(text=None, photo=None, odd=True)).message_type == "odd"


def test_null_fields_are_absent():
    msg = minimal(text=None)
    msg |= {"text": None, "poll": None, "dice": {"emoji": "🎲", "value": 2}}
    got = one(msg)
    assert (got.message_type, got.text) == ("dice", None)


def test_false_and_empty_fields_are_absent_as_python_telegram_bot_writes_them():
    """`Update.to_json()` writes every optional service flag as false: the message is still text."""
    flags = {"group_chat_created": False, "delete_chat_photo": False, "supergroup_chat_created": False,
             "channel_chat_created": False, "new_chat_members": [], "new_chat_title": "", "pinned_message": {}}
    assert one(minimal(**flags)) == one(minimal())
    assert one(minimal(text=None, **(flags | {"delete_chat_photo": True}))).message_type == "service"
    # an empty sender_chat does not hide `from`; an empty flag in the replied message is no forum topic root
    assert one(minimal(sender_chat={})).sender_id == "42"
    replied = {"message_id": 3, "forum_topic_created": False}
    assert one(minimal(reply_to_message=replied)).reply_to_message_id == "42:3"


def test_zero_is_a_value_not_an_empty_field():
    got = one(minimal(text=None, dice={"emoji": "🎲", "value": 0}, chat={"id": 0, "type": "private"}))
    assert (got.message_type, got.chat_id, got.message_id) == ("dice", "0", "0:7")
    assert one(minimal(text=None, migrate_to_chat_id=0)).message_type == "service"
    assert one(minimal(message_id=0)).message_id == "42:0"


def test_lone_surrogates_become_replacement_characters_so_parquet_can_hold_them():
    got = one(minimal(text="a\ud800b", **{"from": {"id": 1, "first_name": "\udfff"}}))
    assert got.text == "a\ufffdb" and got.sender_name == "\ufffd"
    for value in (got.text, got.sender_name):
        value.encode("utf-8")


def test_huge_and_deep_values_are_fine():
    deep: Any = "bottom"
    for _ in range(5000):
        deep = {"d": deep}
    got = one(minimal(text="x" * 1_000_000, reply_markup=deep, extra_nested=[deep]))
    assert len(got.text or "") == 1_000_000
    assert one(minimal(chat={"id": 10**40, "type": "private"})).chat_id == str(10**40)


# --- never raises ------------------------------------------------------------------------------------------

REPLACEMENTS: tuple[Any, ...] = (None, [], {}, "", "x", 0, -1, 1.5, float("nan"), True, 10**30, [{}], "\ud800")


def _paths(node: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """(container, key) of every value down to depth 4, so a mutation can be applied in place and undone."""
    if depth > 4:
        return []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out: list[tuple[Any, Any]] = []
    for key, value in items:
        out.append((node, key))
        out.extend(_paths(value, depth + 1))
    return out


def _check(parsed: Any) -> None:
    """What the ETL relies on: a Parsed of well-typed rows and sentences, all writable as UTF-8."""
    assert isinstance(parsed, Parsed)
    assert all(isinstance(p, str) and p for p in parsed.problems)
    for m in parsed.messages:
        assert type(m.sent_at) is int and 0 < m.sent_at <= MAX_UNIX_SECONDS * MS
        assert m.edited_at is None or type(m.edited_at) is int
        assert type(m.is_edit) is bool
        for text in (m.message_id, m.chat_id, m.chat_type, m.message_type, m.raw_key):
            assert type(text) is str and text
            text.encode("utf-8")
        for text in (m.chat_title, m.sender_id, m.sender_name, m.sender_username, m.text, m.media_id,
                     m.media_mime_type, m.reply_to_message_id):  # fmt: skip
            assert text is None or (type(text) is str and text)
            if text is not None:
                text.encode("utf-8")


def test_parse_never_raises_on_mutated_corpus_payloads():
    """Every value down to depth 4 of every corpus file: dropped, and swapped for each odd type."""
    runs = 0
    for name in FILES:
        payload = load(name)
        for container, key in _paths(payload):
            original = container[key]
            for replacement in REPLACEMENTS:
                container[key] = replacement
                _check(parse(payload, KEY))
                runs += 1
            if isinstance(container, dict):
                del container[key]
                _check(parse(payload, KEY))
                container[key] = original  # re-added at the end: key order is varied too
            else:
                container[key] = original
            runs += 1
        _check(parse(payload, KEY))
    assert runs > 15_000


def test_the_message_type_does_not_depend_on_key_order():
    """python-telegram-bot writes keys in its own order; found by its round trip: an edit carrying `voice` and
    `text` was `voice` as sent and `text` re-serialised. Media beats text, text beats a service field."""
    voice = {"file_id": "v", "mime_type": "audio/ogg"}
    for fields in ({"voice": voice, "text": "t"}, {"text": "t", "voice": voice}):
        got = one(minimal(text=None) | fields)
        assert (got.message_type, got.media_id, got.text) == ("voice", "v", "t")
    for fields in ({"new_chat_title": "T", "text": "t"}, {"text": "t", "new_chat_title": "T"}):
        assert one(minimal(text=None) | fields).message_type == "text"
