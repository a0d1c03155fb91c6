"""Realistic synthetic deliveries of every kind, for both platforms: the one generator that tests,
benchmarks and the demo use.

Each `Delivery` carries the exact bytes a platform would POST (compact JSON, non-ASCII escaped as
`\\uXXXX`; WhatsApp also escapes `/`), and what the ETL should make of it, worked out here from what was
generated (not by the parsers), so tests can check the ETL against an independent expectation.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage
from chalicelib.webhook import TELEGRAM_SECRET_HEADER, WHATSAPP_SIGNATURE_HEADER, whatsapp_signature

MessageKey = tuple[str, str, int | None]  # (source, message_id, edited_at ms)


@dataclass(frozen=True)
class Delivery:
    source: str
    body: bytes
    messages: tuple[MessageKey, ...] = ()  # the message rows this delivery should give
    statuses: tuple[tuple[str, str], ...] = ()  # (message_id, status)
    kind: str = ""  # what was generated, for humans and for test selection
    day: date | None = None  # the day it is received

    def headers(self, secrets: dict[str, str]) -> dict[str, str]:
        """Request headers as the platform sends them, signed with the given secrets."""
        headers = {"Content-Type": "application/json"}
        if self.source == "telegram":
            headers[TELEGRAM_SECRET_HEADER] = secrets["TELEGRAM_SECRET_TOKEN"]
        else:
            headers[WHATSAPP_SIGNATURE_HEADER] = whatsapp_signature(secrets["WHATSAPP_APP_SECRET"], self.body)
        return headers


def telegram_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def whatsapp_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


FIRST_NAMES = ["Zoë", "José", "Ana", "Mohammed", "Wei", "Priya", "Olga", "Kwame", "Søren", "Aiko", "Lucía", "Tomás",
               "Fatima", "Nguyễn", "Élodie", "Ivan", "Chloé", "Mateus", "Yuki", "Hana"]
LAST_NAMES = ["García", "Müller", "Smith", "Kowalski", "Nakamura", "O'Brien", "Dubois", "Rossi", "Haddad", "Silva",
              "", "Ng", "Ivanova", "Björk", "Okafor"]
TEXTS = ["Hi! Is the shop open today?", "Hola, ¿tienen envío a domicilio?", "Where is my order #{n}?",
         "Thanks a lot 🙏", "Can I change my delivery address?", "Preis für 2 Stück?", "ok 👍", "Bonjour, c'est urgent",
         "Do you have this in size M?", "我想退货", "Приветствую! Когда доставка?", "Yes please", "No, thank you",
         "What are your opening hours?", "I'd like to book a table for 4 at 8pm 🍽️", "Great, see you then!",
         "The payment failed, can you help?", "👋", "Can you send me the invoice?", "मुझे मदद चाहिए"]
CAPTIONS = ["Here is the receipt", "This one", "Damaged on arrival 😞", "", "Look at this"]
EMOJIS = ["👍", "❤️", "😂", "😮", "😢", "🙏"]
GROUP_TITLES = ["Support Team", "Clientes VIP 🌟", "Lieferanten", "Beta testers", "Équipe Paris"]
CHANNEL_TITLES = ["Shop News", "Ofertas del día"]

# WhatsApp kinds with weights (per delivery). Statuses are a large share of real WhatsApp traffic.
WHATSAPP_KINDS = {
    "text": 40, "reply": 4, "image": 6, "audio": 4, "video": 2, "document": 2, "sticker": 2, "location": 1,
    "contacts": 1, "button_reply": 2, "list_reply": 1, "button": 1, "reaction": 3, "reaction_removed": 1, "order": 1,
    "system": 0.3, "unsupported": 0.3, "future_kind": 0.2, "edit": 1, "revoke": 0.5, "batch": 3, "bsuid": 1,
    "echo": 2, "status": 35, "status_batch": 3, "status_failed": 1, "template_status": 0.3, "value_errors": 0.2,
}
TELEGRAM_KINDS = {
    "private_text": 35, "group_text": 10, "supergroup_reply": 5, "channel_post": 4, "edited_message": 3,
    "edited_channel_post": 1, "business_message": 2, "photo": 5, "video": 1, "animation": 1, "voice": 3, "audio": 1,
    "video_note": 1, "document": 2, "sticker": 3, "location": 1, "venue": 0.5, "contact": 0.5, "poll": 0.5, "dice": 0.3,
    "forwarded": 2, "anonymous_admin": 0.5, "service_joined": 1, "service_pinned": 0.5, "callback_query": 3,
    "my_chat_member": 1, "message_reaction": 1, "inline_query": 0.5, "future_kind": 0.2,
}


@dataclass
class _World:
    """The people, chats and message history the generator draws from."""

    rng: random.Random
    day: date
    start: int = 0
    span: int = 86400  # seconds of the day that times are drawn from (less for "today, until now")
    wa_customers: list[dict[str, str]] = field(default_factory=list)
    tg_users: list[dict[str, Any]] = field(default_factory=list)
    tg_groups: list[dict[str, Any]] = field(default_factory=list)
    tg_channels: list[dict[str, Any]] = field(default_factory=list)
    wa_by_id: dict[str, dict[str, str]] = field(default_factory=dict)
    tg_counters: dict[int, int] = field(default_factory=dict)
    wa_inbound: list[tuple[str, str, int]] = field(default_factory=list)  # (wamid, wa_id, ts)
    wa_outbound: list[list[Any]] = field(default_factory=list)  # [wamid, wa_id, ts, status index], mutable
    tg_sent: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # (message, update kind) for edits
    update_id: int = 0

    def __post_init__(self) -> None:
        r = self.rng
        self.on(self.day)
        self.update_id = r.randrange(100_000_000, 900_000_000)
        for i in range(400):
            name = f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}".strip()
            wa_id = f"{r.choice(['1', '34', '44', '49', '55', '91', '234'])}{r.randrange(10**8, 10**10)}"
            user_id = f"US.{r.randrange(10**15, 10**16)}"
            self.wa_customers.append({"wa_id": wa_id, "name": name if i % 17 else "", "user_id": user_id})
            self.wa_by_id[wa_id] = self.wa_customers[-1]
        for _ in range(300):
            user = {"id": r.randrange(10**8, 7 * 10**9), "is_bot": False, "first_name": r.choice(FIRST_NAMES)}
            last = r.choice(LAST_NAMES)
            if last:
                user["last_name"] = last
            if r.random() < 0.7:
                user["username"] = f"{user['first_name'].lower()[:4]}{r.randrange(10, 9999)}".encode(
                    "ascii", "ignore").decode() or "user"
            user["language_code"] = r.choice(["en", "es", "de", "fr", "pt-br", "ru"])
            self.tg_users.append(user)
        for title in GROUP_TITLES:
            kind = r.choice(["group", "supergroup"])
            gid = -r.randrange(10**9, 2 * 10**9) if kind == "group" else -(10**12) - r.randrange(10**9, 2 * 10**9)
            self.tg_groups.append({"id": gid, "title": title, "type": kind})
        for title in CHANNEL_TITLES:
            cid = -(10**12) - r.randrange(10**9, 2 * 10**9)
            self.tg_channels.append({"id": cid, "title": title, "username": title.split()[0].lower() + "_channel",
                                     "type": "channel"})

    def on(self, day: date, until: datetime | None = None) -> None:
        """Receive the next deliveries on `day` (before `until` when given): the same people and chats, another day."""
        self.day = day
        self.start = int(datetime.combine(day, time(), UTC).timestamp())
        self.span = 86400 if until is None else max(60, min(86400, int(until.timestamp()) - self.start))

    def remember(self, history: list[Any], item: Any) -> None:
        """Keep the recent past only: edits, replies and statuses refer to recent messages, and the
        generator stays linear in the number of deliveries."""
        history.append(item)
        if len(history) > 2000:
            del history[:1000]

    def when(self) -> int:
        """A second of the day, busier in the daytime (UTC) than at night."""
        hour = self.rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8, 8, 7, 6, 5, 4,
                                                    3, 2])[0]
        return self.start + (hour * 3600 + self.rng.randrange(3600)) * self.span // 86400

    def wamid(self) -> str:
        return "wamid." + base64.b64encode(b"\x15\x02\x00\x12\x18" + self.rng.randbytes(22)).decode()

    def next_tg_id(self, chat_id: int) -> int:
        self.tg_counters[chat_id] = self.tg_counters.get(chat_id, self.rng.randrange(1, 5000)) + 1
        return self.tg_counters[chat_id]


# --- WhatsApp -------------------------------------------------------------------------------------

WABA_ID = "102290129340398"
# (code, title, details) of delivery failures, as Meta's error code reference names them.
FAILURES = [
    (131047, "Re-engagement message",
     "More than 24 hours have passed since the recipient last replied to the sender number."),
    (131026, "Message undeliverable", "Unable to deliver message. Reasons can include: the recipient phone number is "
     "not a WhatsApp phone number."),
    (131049, "Meta chose not to deliver.", "In order to maintain a healthy ecosystem engagement, the message failed "
     "to be delivered."),
    (131053, "Media upload error", "Unable to upload the media used in the message."),
]
METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def _wa_envelope(changes: list[dict[str, Any]], waba: str = WABA_ID) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": changes}]}


def _wa_change(value: dict[str, Any], field_name: str = "messages") -> dict[str, Any]:
    return {"value": {"messaging_product": "whatsapp", "metadata": dict(METADATA), **value}, "field": field_name}


def _wa_contact(customer: dict[str, str], bsuid: bool = False) -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {"name": customer["name"]}, "wa_id": "" if bsuid else customer["wa_id"]}
    if bsuid:
        contact["user_id"] = customer["user_id"]
    return contact


def _media(w: _World, mime: str, **extra: Any) -> dict[str, Any]:
    return {**extra, "mime_type": mime, "sha256": base64.b64encode(w.rng.randbytes(32)).decode(),
            "id": str(w.rng.randrange(10**15, 10**16))}


def _wa_message(w: _World, kind: str, customer: dict[str, str], ts: int) -> dict[str, Any]:
    """One inbound `messages[]` object of the given kind."""
    r = w.rng
    msg: dict[str, Any] = {"from": customer["wa_id"], "id": w.wamid(), "timestamp": str(ts)}
    text = r.choice(TEXTS).replace("{n}", str(r.randrange(1000, 99999)))
    if kind in ("text", "reply", "bsuid"):
        msg["type"] = "text"
        msg["text"] = {"body": text}
        if kind == "reply" and w.wa_outbound:
            msg["context"] = {"from": METADATA["display_phone_number"], "id": r.choice(w.wa_outbound)[0]}
    elif kind == "image":
        msg.update(type="image", image=_media(w, "image/jpeg", caption=r.choice(CAPTIONS)))
    elif kind == "audio":
        msg.update(type="audio", audio=_media(w, "audio/ogg; codecs=opus", voice=True))
    elif kind == "video":
        msg.update(type="video", video=_media(w, "video/mp4"))
    elif kind == "document":
        msg.update(type="document", document=_media(w, "application/pdf", caption="Invoice",
                                                     filename=f"invoice-{r.randrange(100, 999)}.pdf"))
    elif kind == "sticker":
        msg.update(type="sticker", sticker=_media(w, "image/webp", animated=False))
    elif kind == "location":
        msg.update(type="location", location={"latitude": round(r.uniform(-60, 60), 6),
                                              "longitude": round(r.uniform(-170, 170), 6),
                                              "name": "Main Street Store", "address": "1 Main St"})
    elif kind == "contacts":
        msg.update(type="contacts", contacts=[{"name": {"formatted_name": "John Doe", "first_name": "John",
                                                        "last_name": "Doe"},
                                               "phones": [{"phone": "+1 (650) 555-1234", "wa_id": "16505551234",
                                                           "type": "CELL"}]}])
    elif kind in ("button_reply", "list_reply"):
        title = r.choice(["Yes", "No", "Talk to an agent", "Track my order"])
        reply = {"id": f"opt-{r.randrange(100)}", "title": title}
        if kind == "list_reply":
            reply["description"] = "Pick this option"
        msg.update(type="interactive", interactive={"type": kind, kind: reply})
        if w.wa_outbound:
            msg["context"] = {"from": METADATA["display_phone_number"], "id": r.choice(w.wa_outbound)[0]}
    elif kind == "button":
        msg.update(type="button", button={"payload": "CONFIRM_BOOKING", "text": "Confirm"})
        if w.wa_outbound:
            msg["context"] = {"from": METADATA["display_phone_number"], "id": r.choice(w.wa_outbound)[0]}
    elif kind in ("reaction", "reaction_removed"):
        target = r.choice(w.wa_outbound or w.wa_inbound or [(w.wamid(), "", ts)])[0]
        reaction = {"message_id": target}
        if kind == "reaction":
            reaction["emoji"] = r.choice(EMOJIS)
        msg.update(type="reaction", reaction=reaction)
    elif kind == "order":
        msg.update(type="order", order={"catalog_id": "1234567890", "text": "Please deliver before noon",
                                        "product_items": [{"product_retailer_id": "SKU-42", "quantity": 2,
                                                           "item_price": 9.99, "currency": "EUR"}]})
    elif kind == "system":
        msg.update(type="system", system={"body": f"{customer['name'] or 'User'} changed their phone number",
                                          "wa_id": str(int(customer["wa_id"]) + 1), "type": "user_changed_number"})
    elif kind == "unsupported":
        msg.update(type="unsupported", errors=[{"code": 131051, "title": "Message type unknown",
                                                "message": "Message type unknown",
                                                "error_data": {"details": "Message type is currently not supported."}}])
    elif kind == "future_kind":
        msg.update(type="hologram", hologram={"id": str(r.randrange(10**15)), "dimensions": 3})
    else:
        raise ValueError(kind)
    return msg


def _wa_status(w: _World, status: str | None) -> dict[str, Any]:
    """A status callback: the business answers an inbound message (`sent`, or `failed`), or a message it sent
    earlier moves on (`delivered`, then `read`)."""
    r = w.rng
    day_end = w.start + w.span - 1
    if status or not w.wa_outbound or r.random() < 0.6:
        inbound = r.choice(w.wa_inbound) if w.wa_inbound else (w.wamid(), r.choice(w.wa_customers)["wa_id"], w.when())
        reply_at = min(inbound[2] + int(r.expovariate(1 / 600)) + 5, day_end)
        out = [w.wamid(), inbound[1], reply_at, 0]
        w.remember(w.wa_outbound, out)
        status = status or "sent"
    else:
        out = r.choice(w.wa_outbound)
        out[3] = min(out[3] + 1, 2)
        out[2] = min(out[2] + r.randrange(2, 900), day_end)
        status = ("sent", "delivered", "read")[out[3]]
    item: dict[str, Any] = {"id": out[0], "status": status, "timestamp": str(out[2]), "recipient_id": out[1]}
    if status == "sent":
        item["conversation"] = {"id": base64.b16encode(r.randbytes(16)).decode().lower(),
                                "expiration_timestamp": str(out[2] + 86400), "origin": {"type": "service"}}
    if status == "failed":
        code, title, details = r.choice(FAILURES)
        item["errors"] = [{"code": code, "title": title, "message": title, "error_data": {"details": details},
                           "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]
    else:
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service",
                           "type": "free_customer_service"}
    return item


def _whatsapp(w: _World, kind: str) -> Delivery:
    r = w.rng
    customer = r.choice(w.wa_customers)
    ts = w.when()
    src = "whatsapp"
    if kind in ("status", "status_failed", "status_batch"):
        statuses = [_wa_status(w, "failed" if kind == "status_failed" else None)
                    for _ in range(r.randrange(2, 5) if kind == "status_batch" else 1)]
        body = whatsapp_bytes(_wa_envelope([_wa_change({"statuses": statuses})]))
        keys = tuple(dict.fromkeys((s["id"], s["status"]) for s in statuses))
        return Delivery(src, body, statuses=keys, kind=kind)
    if kind == "echo":
        wamid = w.wamid()
        echo = {"from": METADATA["display_phone_number"], "to": customer["wa_id"], "id": wamid,
                "timestamp": str(ts), "type": "text", "text": {"body": r.choice(["Your order has shipped 📦",
                                                                                "We open at 9am.", "Thanks!"])}}
        w.remember(w.wa_outbound, [wamid, customer["wa_id"], ts, 0])
        body = whatsapp_bytes(_wa_envelope([_wa_change({"message_echoes": [echo]}, "smb_message_echoes")]))
        return Delivery(src, body, messages=((src, wamid, None),), kind=kind)
    if kind == "template_status":
        value = {"event": "APPROVED", "message_template_id": r.randrange(10**15),
                 "message_template_name": "order_update", "message_template_language": "en_US", "reason": "NONE"}
        change = {"value": value, "field": "message_template_status_update"}
        body = whatsapp_bytes({"object": "whatsapp_business_account",
                               "entry": [{"id": WABA_ID, "time": ts, "changes": [change]}]})
        return Delivery(src, body, kind=kind)
    if kind == "value_errors":
        value = {"errors": [{"code": 131000, "title": "Something went wrong", "message": "Something went wrong",
                             "error_data": {"details": "Unknown error"}}]}
        return Delivery(src, whatsapp_bytes(_wa_envelope([_wa_change(value)])), kind=kind)
    if kind in ("edit", "revoke"):
        if not w.wa_inbound:
            kind = "text"
        else:
            original, wa_id, _ = r.choice(w.wa_inbound)
            event: dict[str, Any] = {"from": wa_id, "id": w.wamid(), "timestamp": str(ts), "type": kind}
            if kind == "edit":
                event["edit"] = {"original_message_id": original,
                                 "message": {"type": "text", "text": {"body": r.choice(TEXTS).replace("{n}", "7")}}}
            else:
                event["revoke"] = {"original_message_id": original}
            who = w.wa_by_id.get(wa_id, customer)
            value = {"contacts": [_wa_contact(who)], "messages": [event]}
            body = whatsapp_bytes(_wa_envelope([_wa_change(value)]))
            return Delivery(src, body, messages=((src, original, ts * 1000),), kind=kind)
    if kind == "batch":
        people = r.sample(w.wa_customers, 3)
        msgs = [_wa_message(w, r.choice(["text", "text", "image", "audio"]), c, ts + i) for i, c in enumerate(people)]
        contacts = [_wa_contact(c) for c in reversed(people)]  # contacts order differs from messages order
        second = [_wa_message(w, "text", people[0], ts + 5)]
        body = whatsapp_bytes({"object": "whatsapp_business_account", "entry": [
            {"id": WABA_ID, "changes": [_wa_change({"contacts": contacts, "messages": msgs})]},
            {"id": WABA_ID, "changes": [_wa_change({"contacts": [_wa_contact(people[0])], "messages": second})]}]})
        all_msgs = msgs + second
        for m in all_msgs:
            w.remember(w.wa_inbound, (m["id"], m["from"], ts))
        return Delivery(src, body, messages=tuple((src, m["id"], None) for m in all_msgs), kind=kind)
    bsuid = kind == "bsuid"
    msg = _wa_message(w, kind, customer, ts)
    if bsuid:
        msg["from"] = ""
        msg["from_user_id"] = customer["user_id"]
    else:
        w.remember(w.wa_inbound, (msg["id"], customer["wa_id"], ts))
    value = {"contacts": [_wa_contact(customer, bsuid)], "messages": [msg]}
    if kind == "system":
        value.pop("contacts")
    body = whatsapp_bytes(_wa_envelope([_wa_change(value)]))
    return Delivery(src, body, messages=((src, msg["id"], None),), kind=kind)


# --- Telegram -------------------------------------------------------------------------------------

def _file(w: _World, prefix: str, size: int) -> dict[str, Any]:
    r = w.rng
    return {"file_id": prefix + base64.urlsafe_b64encode(r.randbytes(48)).decode().rstrip("="),
            "file_unique_id": "AQAD" + base64.urlsafe_b64encode(r.randbytes(9)).decode(), "file_size": size}


def _tg_private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat = {"id": user["id"], "first_name": user["first_name"], "type": "private"}
    for k in ("last_name", "username"):
        if k in user:
            chat[k] = user[k]
    return chat


def _telegram(w: _World, kind: str) -> Delivery:
    r = w.rng
    w.update_id += 1
    user = r.choice(w.tg_users)
    ts = w.when()
    src = "telegram"
    update: dict[str, Any] = {"update_id": w.update_id}
    chat = _tg_private_chat(user)
    if kind in ("group_text", "supergroup_reply", "service_joined", "service_pinned", "anonymous_admin"):
        chat = dict(r.choice([g for g in w.tg_groups if kind != "supergroup_reply" or g["type"] == "supergroup"]
                             or w.tg_groups))
    msg: dict[str, Any] = {"message_id": 0, "from": user, "chat": chat, "date": ts}
    text = r.choice(TEXTS).replace("{n}", str(r.randrange(1000, 99999)))
    update_kind = "message"

    if kind in ("callback_query", "my_chat_member", "message_reaction", "inline_query"):
        if kind == "callback_query":
            shown = {"message_id": w.next_tg_id(chat["id"]), "from": {"id": 7000000001, "is_bot": True,
                                                                         "first_name": "Shop", "username": "shop_bot"},
                     "chat": chat, "date": ts - 60, "text": "Choose an option",
                     "reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}}
            update["callback_query"] = {"id": str(r.randrange(10**18)), "from": user, "message": shown,
                                        "chat_instance": str(r.randrange(10**18)), "data": "yes"}
        elif kind == "my_chat_member":
            update["my_chat_member"] = {"chat": chat, "from": user, "date": ts,
                                        "old_chat_member": {"user": {"id": 7000000001, "is_bot": True,
                                                                     "first_name": "Shop"}, "status": "member"},
                                        "new_chat_member": {"user": {"id": 7000000001, "is_bot": True,
                                                                     "first_name": "Shop"}, "status": "kicked",
                                                            "until_date": 0}}
        elif kind == "message_reaction":
            group = r.choice(w.tg_groups)
            update["message_reaction"] = {"chat": group, "message_id": w.next_tg_id(group["id"]) - 1, "user": user,
                                          "date": ts, "old_reaction": [],
                                          "new_reaction": [{"type": "emoji", "emoji": r.choice(EMOJIS)}]}
        else:
            update["inline_query"] = {"id": str(r.randrange(10**18)), "from": user, "query": "pizza", "offset": ""}
        return Delivery(src, telegram_bytes(update), kind=kind)

    if kind in ("edited_message", "edited_channel_post") and w.tg_sent:
        candidates = [(m, k) for m, k in w.tg_sent[-200:] if (k == "channel_post") == (kind == "edited_channel_post")]
        if candidates:
            original, _ = r.choice(candidates)
            edited = {**original, "edit_date": max(ts, original["date"] + 1),
                      "text": original.get("text", "") + " (edited)"}
            update[kind] = edited
            mid = f"{edited['chat']['id']}:{edited['message_id']}"
            return Delivery(src, telegram_bytes(update), messages=((src, mid, edited["edit_date"] * 1000),), kind=kind)
        kind = "private_text"
    elif kind in ("edited_message", "edited_channel_post"):
        kind = "private_text"

    if kind == "channel_post":
        channel = r.choice(w.tg_channels)
        msg = {"message_id": 0, "sender_chat": channel, "chat": channel, "date": ts, "text": text}
        update_kind = "channel_post"
    elif kind == "anonymous_admin":
        msg["from"] = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
        msg["sender_chat"] = chat
        msg["text"] = text
    elif kind == "business_message":
        update_kind = "business_message"
        msg["business_connection_id"] = "AbCdEfGhIjKlMnOp"
        msg["text"] = text
    elif kind == "photo":
        sizes = [(90, 67, 1200), (320, 240, 15000), (800, 600, 60000), (1280, 960, 120000)]
        msg["photo"] = [{**_file(w, "AgACAgIAAxkBAAI", s), "width": wd, "height": ht} for wd, ht, s in sizes]
        caption = r.choice(CAPTIONS)
        if caption:
            msg["caption"] = caption
    elif kind == "video":
        msg["video"] = {"duration": 12, "width": 1280, "height": 720, "file_name": "clip.mp4", "mime_type": "video/mp4",
                        **_file(w, "BAACAgIAAxkBAAI", 2_000_000)}
    elif kind == "animation":
        anim = {"file_name": "funny.mp4", "mime_type": "video/mp4", "duration": 3, "width": 320, "height": 240,
                **_file(w, "CgACAgIAAxkBAAI", 90_000)}
        msg["animation"] = anim
        msg["document"] = {k: anim[k] for k in ("file_name", "mime_type", "file_id", "file_unique_id", "file_size")}
    elif kind == "voice":
        msg["voice"] = {"duration": r.randrange(1, 60), "mime_type": "audio/ogg", **_file(w, "AwACAgIAAxkBAAI", 20_000)}
    elif kind == "audio":
        msg["audio"] = {"duration": 200, "performer": "Band", "title": "Song", "file_name": "song.mp3",
                        "mime_type": "audio/mpeg", **_file(w, "CQACAgIAAxkBAAI", 3_000_000)}
    elif kind == "video_note":
        msg["video_note"] = {"duration": 8, "length": 240, **_file(w, "DQACAgIAAxkBAAI", 300_000)}
    elif kind == "document":
        msg["document"] = {"file_name": "contrato.pdf", "mime_type": "application/pdf",
                           **_file(w, "BQACAgIAAxkBAAI", 150_000)}
        msg["caption"] = "Signed contract"
    elif kind == "sticker":
        msg["sticker"] = {"width": 512, "height": 512, "emoji": r.choice(EMOJIS), "set_name": "HotCherry",
                          "is_animated": False, "is_video": False, "type": "regular",
                          **_file(w, "CAACAgIAAxkBAAI", 25_000)}
    elif kind in ("location", "venue"):
        loc = {"latitude": round(r.uniform(-60, 60), 6), "longitude": round(r.uniform(-170, 170), 6)}
        msg["location"] = loc
        if kind == "venue":
            msg["venue"] = {"location": loc, "title": "Café Central", "address": "Herrengasse 14"}
    elif kind == "contact":
        msg["contact"] = {"phone_number": "+4915112345678", "first_name": "Anna", "last_name": "Schmidt",
                          "user_id": 123456789}
    elif kind == "poll":
        msg["poll"] = {"id": str(r.randrange(10**18)), "question": "Which day works best?",
                       "options": [{"text": "Mon", "voter_count": 0}, {"text": "Tue", "voter_count": 0}],
                       "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
                       "allows_multiple_answers": False}
    elif kind == "dice":
        msg["dice"] = {"emoji": "🎲", "value": r.randrange(1, 7)}
    elif kind == "forwarded":
        origin_user = r.choice(w.tg_users)
        msg["forward_origin"] = {"type": "user", "sender_user": origin_user, "date": ts - 86400}
        msg["forward_from"] = origin_user
        msg["forward_date"] = ts - 86400
        msg["text"] = text
    elif kind == "service_joined":
        joined = r.choice(w.tg_users)
        msg["new_chat_participant"] = joined
        msg["new_chat_member"] = joined
        msg["new_chat_members"] = [joined]
    elif kind == "service_pinned":
        msg["pinned_message"] = {"message_id": w.next_tg_id(chat["id"]) - 1, "from": user, "chat": chat,
                                 "date": ts - 100, "text": "Opening hours: 9-18"}
    elif kind == "future_kind":
        msg["hologram"] = {"id": "h-1", "dimensions": 3}
    elif kind == "supergroup_reply":
        msg["text"] = text
        earlier = [m for m, _ in w.tg_sent[-200:] if m["chat"]["id"] == chat["id"]]
        if earlier:
            msg["reply_to_message"] = r.choice(earlier)
    else:  # private_text, group_text
        msg["text"] = text
    msg["message_id"] = w.next_tg_id(msg["chat"]["id"])
    if "entities" not in msg and "text" in msg and msg["text"].startswith("/"):
        msg["entities"] = [{"offset": 0, "length": len(msg["text"]), "type": "bot_command"}]
    update[update_kind] = msg
    if update_kind != "business_message":
        w.remember(w.tg_sent, ({k: v for k, v in msg.items() if k != "reply_to_message"}, update_kind))
    mid = f"{msg['chat']['id']}:{msg['message_id']}"
    return Delivery(src, telegram_bytes(update), messages=((src, mid, None),), kind=kind)


def samples(now: int) -> dict[str, bytes]:
    """One small, realistic delivery per platform, framed as the platforms send them (non-ASCII escaped)."""
    telegram = {
        "update_id": 100000001,
        "message": {
            "message_id": 1,
            "from": {"id": 111111111, "is_bot": False, "first_name": "Zoë", "username": "zoe", "language_code": "en"},
            "chat": {"id": 111111111, "first_name": "Zoë", "username": "zoe", "type": "private"},
            "date": now,
            "text": "Hello from Telegram 👋",
        },
    }
    whatsapp = {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": "José"}, "wa_id": "16505551234"}],
                    "messages": [{
                        "from": "16505551234",
                        "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                        "timestamp": str(now),
                        "type": "text",
                        "text": {"body": "Hola desde WhatsApp ¿qué tal?"},
                    }],
                },
            }],
        }],
    }
    return {"telegram": telegram_bytes(telegram), "whatsapp": whatsapp_bytes(whatsapp)}


# How busy each weekday is (Monday first), for traffic over several days: quieter at the weekend.
WEEKDAY_TRAFFIC = (1.0, 1.05, 1.0, 0.95, 0.9, 0.55, 0.45)


def calendar(last: date, days: int) -> list[date]:
    """The `days` days that end on `last`, oldest first."""
    return [last - timedelta(days=back) for back in range(days - 1, -1, -1)]


def day_shares(n: int, days: Sequence[date]) -> list[int]:
    """How many of `n` deliveries each day receives: one each first (when there are enough), the rest in
    proportion to the weekday's traffic, rounded so that they add up to `n`."""
    base = 1 if n >= len(days) else 0
    rest = n - base * len(days)
    weights = [WEEKDAY_TRAFFIC[d.weekday()] for d in days]
    exact = [rest * w / sum(weights) for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(days)), key=lambda i: (shares[i] - exact[i], -i))
    for i in by_remainder[:rest - sum(shares)]:
        shares[i] += 1
    return [base + s for s in shares]


def deliveries(n: int, seed: int = 0, day: date | None = None, sources: Sequence[str] = layout.SOURCES,
               retry_rate: float = 0.02, until: datetime | None = None, days: int = 1) -> list[Delivery]:
    """`n` deliveries received on `day` (default today, UTC), a realistic mix of kinds, chats and senders,
    sent before `until` when given (e.g. now, so that nothing of today is in the future). With `days` > 1 they
    are spread over the `days` days that end on `day`, oldest first, busier on weekdays; the same people write
    in the same chats every day, as in a real week.

    About `retry_rate` of them are exact retries (the same bytes again, the same day), as the platforms send
    when an answer is slow; edits, replies, reactions and statuses refer to messages generated earlier.
    """
    rng = random.Random(seed)
    last = day or datetime.now(UTC).date()
    days_ = calendar(last, days)
    w = _World(rng, days_[0])
    makers = {"telegram": (_telegram, TELEGRAM_KINDS), "whatsapp": (_whatsapp, WHATSAPP_KINDS)}
    out: list[Delivery] = []
    for today, share in zip(days_, day_shares(n, days_), strict=True):
        w.on(today, until if today == last else None)
        start = len(out)
        while len(out) - start < share:
            if len(out) > start and rng.random() < retry_rate:
                out.append(rng.choice(out[start:]))
                continue
            source = rng.choice(list(sources))
            make, weights = makers[source]
            kind = rng.choices(list(weights), weights=list(weights.values()))[0]
            d = make(w, kind)
            out.append(Delivery(d.source, d.body, d.messages, d.statuses, d.kind, w.day))
    return out


def expected_rows(batch: Iterable[Delivery]) -> tuple[set[MessageKey], set[tuple[str, str]]]:
    """The distinct message keys and status keys a set of deliveries should give."""
    messages: set[MessageKey] = set()
    statuses: set[tuple[str, str]] = set()
    for d in batch:
        messages.update(d.messages)
        statuses.update(d.statuses)
    return messages, statuses


def store(storage: Storage, batch: Iterable[Delivery]) -> int:
    """Write deliveries straight into the raw layer (as the webhook would); return how many were new."""
    written = 0
    for d in batch:
        written += storage.put(layout.raw_key(d.source, d.day or datetime.now(UTC).date(), d.body), d.body,
                               overwrite=False)
    return written
