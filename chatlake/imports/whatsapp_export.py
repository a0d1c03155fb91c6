"""WhatsApp "Export chat" text -> `messages` rows. Pure: bytes in, rows out (no I/O, no clock).

An export is one line per message, `<date>, <time> - <sender>: <text>` (Android) or `[<date>, <time>] <sender>:
<text>` (iOS), in the exporting phone's locale and local time: day/month or month/day order, 2- or 4-digit years,
`/`, `.` or `-` between the fields, a 12- or 24-hour clock (`PM`, `p. m.`, with a space, a no-break space or the
narrow no-break space U+202F newer phones write). A line that does not start like that continues the message
before it (a multi-line message). Lines that cannot be read (text before the first message, a date that is no
date in either order) are returned with their line numbers, never dropped.

Rows have no WhatsApp id (an export has none): `message_id` is a digest of what identifies the message in the
chat (chat, local time as written, sender, text, and its rank among identical ones), so a later export of the
same chat gives the same ids to the same messages.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from itertools import pairwise

from chalicelib.schema import Message
from chalicelib.values import MAX_UNIX_SECONDS
from chatlake.imports.rows import Row, as_messages

SOURCE = "whatsapp"
ID_PREFIX = "wa-export:"
DATE_ORDERS = ("dmy", "mdy", "ymd")

# One message header. The date: three numbers (Korean phones: "2023. 1. 15."); the time: h:mm[:ss] with an optional
# AM/PM word after it, or before it in Korean, Chinese and Japanese ("오후 11:59", "下午11:59"), maybe after a word
# that means "at" ("15/01/2023 à 23:59", Finnish "klo"); then ` - ` (Android) or `] ` (iOS, whose header starts with
# `[`). Directional marks (U+200E/U+200F) may come first.
HEADER = re.compile(
    r"[\u200e\u200f\ufeff]*\[?(\d{1,4})([./-]) ?(\d{1,2})\2 ?(\d{1,4})\.?,?[ \u00a0](?:(?:à|klo|kl\.)[ \u00a0])?"
    r"(?:(오전|오후|上午|下午|午前|午後) ?)?(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?"
    r"(?:[ \u00a0\u202f]?([AaPp])\.?[ \u00a0\u202f]?[Mm]\.?)?"
    r"(?:\] | - )(.*)"
)
# A header's fields, in the order the date and clock readers take them: the date's three numbers and separator, the
# clock's hour, minute, second, AM/PM letter, and AM/PM word.
_FIELDS = (1, 2, 3, 4, 6, 7, 8, 9, 5)
_PM_WORDS = frozenset(("오후", "下午", "午後"))
_PHONE = re.compile(r"\+?[\d ()\-\u00a0\u202f\u2011]{7,24}")
_MARKS = str.maketrans("", "", "\u200e\u200f\ufeff\u202a\u202b\u202c\u2068\u2069")
_ATTACHED = re.compile(r"<attached: ([^>]+)>")  # iOS, in a .zip with media
# Android, in a .zip with media (a voice file may lose its suffix: "AUD-20190101-WA0000.")
_FILE_ATTACHED = re.compile(r"^(.+?\.\w{0,5}) \(file attached\)$")
# The same in any language (`<Anhang: …>`, `… (archivo adjunto)`), trusted only for a file the .zip holds.
_ANY_ATTACHED = re.compile(r"<[^<>:\n]{1,40}: ?([^<>\n]+)>")
_ANY_FILE_ATTACHED = re.compile(r"^(.+?\.\w{0,5}) \([^()\n]{2,40}\)$")
# A shared location: its last line ends with a Google Maps link to the coordinates (iOS "Place (City): <link>",
# iOS live " Location: <link>", Android "Place\nCity\nlocation: <link>").
_LOCATION = re.compile(r"(?:^|: )https://maps\.google\.com/\?q=-?\d{1,3}(?:\.\d+)?,-?\d{1,3}(?:\.\d+)?$")
EDITED_MARK = "<This message was edited>"
OMITTED = {"<media omitted>": "media", "image omitted": "image", "video omitted": "video", "audio omitted": "audio",
           "sticker omitted": "sticker", "gif omitted": "video", "document omitted": "document",
           "contact card omitted": "contacts", "<media weggelassen>": "media", "<multimedia omitido>": "media",
           "<mídia oculta>": "media", "<médias omis>": "media", "<media omessi>": "media"}
# A deleted message's placeholder, compared without a final "." (iOS writes one).
DELETED = frozenset(("this message was deleted", "you deleted this message", "diese nachricht wurde gelöscht",
                     "se eliminó este mensaje", "eliminaste este mensaje", "essa mensagem foi apagada",
                     "ce message a été supprimé"))
# What a system line (nobody wrote it: the app did) says, in English; other languages' system lines have no
# sender either on Android, and on iOS start with U+200E, which is how they are told apart there.
SYSTEM_PHRASES = ("messages and calls are end-to-end encrypted", "messages to this group are now secured",
                  " created group", " created this group", " added ", " removed ", " left", " joined using",
                  " changed the subject", " changed this group's", " changed the group", "'s security code changed",
                  " changed their phone number", " changed to ", "you're now an admin", "you are now an admin",
                  "this chat is with a business account", "missed voice call", "missed video call",
                  "disappearing messages", "you blocked this contact", "you unblocked this contact")
# The notices the app writes when a chat starts: older iOS exports put them under a sender with no U+200E, so they
# are told apart by their words alone (nobody types them).
ENCRYPTION_NOTICES = ("messages and calls are end-to-end encrypted", "messages to this chat and calls are now secured",
                      "messages to this group are now secured", "messages you send to this chat and calls are now")
KIND_BY_NAME = (("PHOTO", "image"), ("IMG", "image"), ("VIDEO", "video"), ("VID", "video"), ("AUDIO", "audio"),
                ("PTT", "audio"), ("AUD", "audio"), ("STICKER", "sticker"), ("STK", "sticker"), ("GIF", "video"))
KIND_BY_MIME = (("image/webp", "sticker"), ("image/", "image"), ("video/", "video"), ("audio/", "audio"))


class DateOrderUnknown(Exception):
    """Every date in the file reads as day/month and as month/day: the person must say which (`--date-order`)."""


@dataclass
class Export:
    """What one export gives: rows, the attachments they name, and the lines that could not be read."""

    chat: str
    chat_type: str
    date_order: str
    rows: list[Row] = field(default_factory=list)  # Message values (imports.rows)
    attachments: dict[str, Row] = field(default_factory=dict)  # file name in the .zip -> its row
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (line number, the line)

    @property
    def messages(self) -> list[Message]:
        return as_messages(self.rows)


def chat_name_of(file_name: str) -> str | None:
    """The chat's name from the export's file name ("WhatsApp Chat with Ana.txt", "WhatsApp Chat - Ana.zip"), in the
    languages whose names are known; None for iOS's `_chat.txt` and anything else."""
    stem = re.sub(r"\.(txt|zip)$", "", file_name.rpartition("/")[2], flags=re.I)
    stem = re.sub(r" ?\(\d+\)$", "", stem)  # "… (1)" of a second download
    m = re.match(r"(?:WhatsApp Chat (?:with|mit|avec|con|met|z) |WhatsApp Chat - |Chat de WhatsApp con |"
                 r"Conversa do WhatsApp com |Conversa de WhatsApp com )(.+)$", stem, flags=re.I)
    return m.group(1).strip() if m else None


def phone_digits(name: str | None) -> str | None:
    """The digits of a sender shown as a phone number ("+34 612 34 56 78"), else None."""
    if name is None or not _PHONE.fullmatch(name):
        return None
    digits = "".join(str(int(c)) for c in name if c.isdecimal())  # as ASCII, as the webhook's wa_id
    return digits if 7 <= len(digits) <= 15 else None


def parse(data: bytes, chat: str, raw_key: str, zone: tzinfo, *, me: str | None = None,
          date_order: str | None = None, files: Collection[str] = (),
          progress: Callable[[int, int], None] | None = None) -> Export:
    """The rows of an export's text. `chat`: its name (from the file name, or given); `zone`: the exporting
    phone's time zone; `me`: the exporter's name as the export shows it (their messages are `direction` out);
    `files`: the names of the files beside the text in a .zip (an attachment in any language is one of them).
    Raises DateOrderUnknown when the file cannot tell day/month from month/day and `date_order` is not given.

    Two passes, each as lean as it can be (an export can hold millions of lines): the lines into messages (their
    header, sender and text), then the rows, once the date order and whether the chat is a group are known. A
    header's time is converted once per distinct header, not once per message."""
    # UTF-8, as phones write it; UTF-16 where an editor saved it again ("Unicode" in Windows' Notepad), told by its BOM
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
    text = data.decode("utf-16" if utf16 else "utf-8", errors="replace")
    lines = text.replace("\ufeff", "").splitlines()  # a BOM (or several, where files were joined): dropped
    # per message: (line number, its header as written, sender or None, the text after "sender: " on its line)
    heads: list[tuple[int, str, str | None, str]] = []
    more: dict[int, list[str]] = {}  # index in heads -> the lines continuing its text
    fields: dict[str, tuple] = {}  # a header as written -> its regex groups
    clean: dict[str, str | None] = {}  # a sender as written -> without direction marks
    unreadable: list[tuple[int, str]] = []
    match = HEADER.match
    append = heads.append
    for number, line in enumerate(lines, 1):
        m = match(line)
        if m is not None:
            at = m.start(10)
            header, first = line[:at], line[at:]
            if header not in fields:
                fields[header] = m.group(*_FIELDS)
            sender, sep, rest = first.partition(": ")  # "Ana: hello"; a system line has no sender (Android)
            if sep and len(sender) <= 80:
                name = clean.get(sender, False)
                if name is False:
                    name = clean[sender] = sender.translate(_MARKS).strip() or None
                append((number, header, name, rest))
            else:
                append((number, header, None, first))
        elif heads:
            more.setdefault(len(heads) - 1, []).append(line)
        elif line.strip():
            unreadable.append((number, line))
    order = date_order or detect_date_order(fields.values(), lambda: [fields[h[1]] for h in heads])
    stamps = _stamps(fields, order, zone)
    out = Export(chat=chat, chat_type="private", date_order=order, unreadable=unreadable)
    senders: set[str] = set()
    group_hint = False
    for i, (number, header, sender, rest) in enumerate(heads):
        if stamps[header] is None:
            unreadable.append((number, lines[number - 1]))
        elif sender is not None:
            senders.add(sender)
        elif any(p in _joined(rest, more.get(i)).lower() for p in (" added ", " created group", " joined using",
                                                                   " left")):
            group_hint = True
    unreadable.sort()
    others = senders - {me, chat}
    if group_hint or len(others) > 1:
        out.chat_type = "group"
    chat_type = out.chat_type
    chat_phone = phone_digits(chat) if chat_type == "private" else None
    chat_id = chat_phone or chat
    title = chat if chat_type == "group" else None
    ranks: dict[tuple, int] = {}
    phones: dict[str, str | None] = {}
    add = out.rows.append
    sha256 = hashlib.sha256
    total = len(heads)
    for done, (_number, header, sender, rest) in enumerate(heads, 1):
        stamp = stamps[header]
        if stamp is None:
            continue
        iso, sent_at = stamp
        content = rest if done - 1 not in more else _joined(rest, more[done - 1])
        message_type, text, media_id, mime, is_edit = _content(content, sender is None, files)
        if message_type == "system":
            sender = None  # iOS puts the chat's name where a sender would be: the app wrote it, nobody in the chat
        is_me = sender is not None and sender == me
        identity = (iso, sender or "", content)
        rank = ranks[identity] = ranks.get(identity, 0) + 1
        digest = sha256(f"{chat_id}\x00{iso}\x00{identity[1]}\x00{content}\x00{rank}".encode("utf-8", "surrogatepass"))
        message_id = ID_PREFIX + digest.hexdigest()[:40]
        if is_me or sender is None:
            phone = None
        else:
            phone = phones.get(sender, False)  # type: ignore[arg-type]
            if phone is False:
                phone = phones[sender] = phone_digits(sender)
        direction = "out" if is_me else "in"
        # a row in Message field order: source, message_id, sent_at, chat_id, chat_type, message_type, raw_key,
        # edited_at, chat_title, sender_id, sender_name, sender_username, sender_phone, text, media_id,
        # media_mime_type, reply_to_message_id, is_edit, direction, account_id
        if is_edit:  # the edit marker: the original, and the version it shows (the export does not say when)
            add((SOURCE, message_id, sent_at, chat_id, chat_type, message_type, raw_key, None, title,
                 phone or sender, sender, None, phone, text, media_id, mime, None, False, direction, None))
        row = (SOURCE, message_id, sent_at, chat_id, chat_type, message_type, raw_key, sent_at if is_edit else None,
               title, phone or sender, sender, None, phone, text, media_id, mime, None, is_edit, direction, None)
        add(row)
        if media_id is not None:
            out.attachments[media_id] = row
        if progress is not None and done % 10000 == 0:
            progress(done, total)
    return out


def _joined(first: str, continued: list[str] | None) -> str:
    """A message's text: its first line's, and the lines that continue it."""
    return first if continued is None else "\n".join([first, *continued])


def _content(content: str, no_sender: bool, files: Collection[str] = ()
             ) -> tuple[str, str | None, str | None, str | None, bool]:
    """(message_type, text, media_id, mime type, is_edit) of a message's text as the export shows it."""
    is_edit = False
    if content.endswith(EDITED_MARK):
        content, is_edit = content[: -len(EDITED_MARK)].rstrip(), True
    # the marks are all outside ASCII: most messages need no search for them
    plain = (content if content.isascii() or not _has_marks(content) else content.translate(_MARKS)).strip()
    if no_sender:
        return "system", plain or None, None, None, False
    lowered = plain.lower() if len(plain) < 40 or content.startswith("\u200e") else ""
    if content.startswith("\u200e") and any(p in lowered for p in SYSTEM_PHRASES):
        return "system", plain, None, None, False  # iOS: the app's lines carry the chat's name and a U+200E
    if plain.startswith("Messages ") and plain.lower().startswith(ENCRYPTION_NOTICES):
        return "system", plain, None, None, False
    if lowered:
        kind = OMITTED.get(lowered)
        if kind is not None:
            return kind, None, None, None, is_edit
        if lowered.rstrip(".") in DELETED:
            return "revoke", None, None, None, False
        if lowered == "live location shared":  # Android
            return "location", None, None, None, is_edit
    if plain.endswith(" document omitted") and " \u2022 " in plain:  # iOS: "<file> • <n> pages document omitted"
        return "document", None, None, None, is_edit
    if "maps.google.com/?q=" in plain and plain.count("\n") <= 2 and _LOCATION.search(plain.rpartition("\n")[2]):
        return "location", None, None, None, is_edit  # as the webhook's: no text, nobody typed one
    if plain.startswith("POLL:\n"):  # "POLL:", the question, then an "OPTION: … (n votes)" line per option
        return "poll", plain.split("\n", 2)[1].strip() or None, None, None, is_edit
    attached = _attachment(plain, files) if "<" in plain or ")" in plain else None
    if attached is not None:
        name, caption = attached
        mime = mimetypes.guess_type(name)[0]
        return _media_kind(name, mime), caption, name, mime, is_edit
    return "text", plain or None, None, None, is_edit


def _attachment(plain: str, files: Collection[str]) -> tuple[str, str | None] | None:
    """(file name, caption) of a message that names an attached file: in English always, in any language where the
    .zip holds the file."""
    first, _, caption = plain.partition("\n")
    m = None
    if "<attached: " in first:
        m = _ATTACHED.search(first)
    elif first.endswith(" (file attached)"):
        m = _FILE_ATTACHED.match(first)
    elif files and ("<" in first or first.endswith(")")):
        m = _ANY_ATTACHED.search(first) or _ANY_FILE_ATTACHED.match(first)
        if m is not None and m.group(1).strip() not in files:
            m = None
    if m is None:
        return None
    return m.group(1).strip(), caption.strip() or None


_MARK_RE = re.compile("[\u200e\u200f\ufeff\u202a-\u202c\u2068\u2069]")


def _has_marks(text: str) -> bool:
    return _MARK_RE.search(text) is not None


def _media_kind(name: str, mime: str | None) -> str:
    upper = name.upper()
    if upper.endswith(".VCF"):
        return "contacts"  # a contact card (the webhook's type for one)
    for marker, kind in KIND_BY_NAME:
        if f"-{marker}-" in upper or upper.startswith(f"{marker}-"):
            return kind
    for prefix, kind in KIND_BY_MIME:
        if mime and mime.startswith(prefix):
            return kind
    return "document"


def detect_date_order(distinct: Collection[tuple], in_order: Callable[[], list[tuple]]) -> str:
    """dmy or mdy (or ymd) from the whole file: a first number over 12 is a day, a second over 12 is a day; else
    the order under which the chat runs forward in time; else DateOrderUnknown. `distinct`: the fields of each
    distinct header; `in_order`: every message's, in file order (asked for only when the numbers cannot tell)."""
    if not distinct:
        return "dmy"
    firsts = {f[0] for f in distinct}
    if any(len(a) == 4 for a in firsts):
        return "ymd"
    first = any(int(a) > 12 for a in firsts)
    second = any(int(b) > 12 for b in {f[2] for f in distinct})
    if first != second:
        return "dmy" if first else "mdy"
    if not first:
        headers = in_order()
        backwards = {}
        for order in ("dmy", "mdy"):
            stamps = [_local_time(f, order) for f in headers]
            known = [s for s in stamps if s is not None]
            backwards[order] = sum(1 for a, b in pairwise(known) if b < a)
        if backwards["dmy"] != backwards["mdy"] and min(backwards.values()) == 0:
            return min(backwards, key=backwards.__getitem__)
    raise DateOrderUnknown(
        "cannot tell whether the dates are day/month or month/day (every date in the file reads both ways): "
        "run again with --date-order dmy or --date-order mdy, as the exporting phone writes dates")


def _local_time(f: tuple[str | None, ...], order: str) -> datetime | None:
    """The naive local time of a header's fields, or None when they make no date."""
    y, month, day = _ymd(f, order)
    clock = _clock(f)
    if clock is None:
        return None
    try:
        return datetime(y, month, day, *clock)
    except ValueError:
        return None


def _ymd(f: tuple[str | None, ...], order: str) -> tuple[int, int, int]:
    """(year, month, day) of a header's fields as numbers, not checked (two-digit years are 20xx)."""
    a, b, c = f[0], f[2], f[3]
    if order == "ymd":
        year, month, day = a, b, c
    elif order == "mdy":
        month, day, year = a, b, c
    else:
        day, month, year = a, b, c
    y = int(year or 0)
    if len(year or "") <= 2:
        y += 2000
    return y, int(month or 0), int(day or 0)


def _clock(f: tuple[str | None, ...]) -> tuple[int, int, int] | None:
    """(hour, minute, second) on a 24-hour clock, not checked beyond AM/PM's hours 1-12 (None outside them)."""
    hour, minute, second = int(f[4] or 0), int(f[5] or 0), int(f[6] or 0)
    ampm = f[7] or (f[8] and ("p" if f[8] in _PM_WORDS else "a"))
    if ampm is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm in "Pp" else 0)
    return hour, minute, second


def _stamps(fields: dict[str, tuple], order: str, zone: tzinfo) -> dict[str, tuple[str, int] | None]:
    """Each distinct header as written -> (its local time as ISO text, ms since the epoch), None where it makes
    no date: what `_local_time`, `isoformat` and `_utc_millis` give, but with a date checked and written once per
    distinct date and a clock once per distinct clock (a chat has many headers a day, and the same minutes every
    day), joined by plain arithmetic."""
    dates: dict[tuple, tuple[str, int] | None] = {}  # the date's fields -> (ISO date, ordinal)
    clocks: dict[tuple, tuple[int, int, str] | None] = {}  # the clock's fields -> (hour, seconds of the day, ISO)
    offsets: dict[tuple[int, int], int | None] = {}
    out: dict[str, tuple[str, int] | None] = {}
    for header, f in fields.items():
        known = dates.get(f[:4], False)
        if known is False:
            try:
                day = date(*_ymd(f, order))
                known = dates[f[:4]] = (day.isoformat(), day.toordinal())
            except ValueError:
                known = dates[f[:4]] = None
        clock = clocks.get(f[4:9], False)
        if clock is False:
            hms = _clock(f)
            if hms is None or hms[0] > 23 or hms[1] > 59 or hms[2] > 59:
                clock = clocks[f[4:9]] = None  # as datetime() refuses it
            else:
                h, m, sec = hms
                clock = clocks[f[4:9]] = (h, h * 3600 + m * 60 + sec, f"T{h:02d}:{m:02d}:{sec:02d}")
        if known is None or clock is None:
            out[header] = None
            continue
        iso_date, ordinal = known
        hour, seconds, iso_clock = clock
        offset = offsets.get((ordinal, hour), False)
        if offset is False or offset is None:  # not asked yet, or changing within the hour: time by time
            millis = _utc_millis(datetime(*_ymd(f, order), *_clock(f)), zone, offsets)  # type: ignore[misc]
        else:
            millis = ((ordinal - _EPOCH_ORDINAL) * 86400 + seconds - offset) * 1000
        out[header] = (iso_date + iso_clock, millis) if 0 < millis <= _LAST_MS else None  # a time the tables hold
    return out


def _utc_millis(local: datetime, zone: tzinfo, offsets: dict[tuple[int, int], int | None] | None = None) -> int:
    """ms since the epoch of a local time of `zone` (the earlier of a repeated hour). `offsets` keeps the zone's
    offset per local hour: asking the zone costs more than the rest, and a chat has many messages an hour."""
    if offsets is not None:
        day = local.toordinal()
        offset = offsets.get((day, local.hour), False)
        if offset is False:
            offset = offsets[day, local.hour] = _hour_offset(local, zone)
        if offset is not None:
            return ((day - _EPOCH_ORDINAL) * 86400 + local.hour * 3600 + local.minute * 60 + local.second
                    - offset) * 1000
    aware = local.replace(tzinfo=zone)
    offset_delta = aware.utcoffset() or timedelta(0)
    return int((local - offset_delta - datetime(1970, 1, 1)).total_seconds()) * 1000


_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
_LAST_MS = MAX_UNIX_SECONDS * 1000


def _hour_offset(local: datetime, zone: tzinfo) -> int | None:
    """The offset (whole seconds) of every time of the local hour of `local`: the same at its first and last
    second (zones change offset at most once in an hour); None where it changes within the hour, or has a
    fraction of a second (asked time by time then)."""
    first = local.replace(minute=0, second=0, tzinfo=zone).utcoffset() or timedelta(0)
    last = local.replace(minute=59, second=59, tzinfo=zone).utcoffset() or timedelta(0)
    if first != last or first.microseconds:
        return None
    return first.days * 86400 + first.seconds
