"""`chatlake import` of a 100k-message export into a fresh folder lake (parse, dedup against the lake, Parquet
written), against the least any importer must do with the same file in the same run: `json.load` of Telegram's
result.json, and for WhatsApp reading the text and splitting each line into its header, sender and text."""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import alternate, report, timed

N = 100_000
GOAL = 3.0
WA_NAME = "WhatsApp Chat with +34 612 34 56 78.txt"
ZONE = ZoneInfo("Europe/Madrid")
WORDS = ["ok", "yes", "no", "thanks", "price", "order", "delivery", "tomorrow", "today", "please", "address",
         "invoice", "size", "colour"]


def telegram_export(n: int) -> bytes:
    rng = random.Random(1)
    start = datetime(2023, 1, 1, 8)
    messages = []
    for i in range(1, n + 1):
        when = start + timedelta(seconds=37 * i)
        m = {"id": i, "type": "message", "date": when.isoformat(), "date_unixtime": str(int(when.timestamp())),
             "from": f"User {i % 50}", "from_id": f"user{1000 + i % 50}",
             "text": " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))}
        if i % 7 == 0:
            m["text"] = ["see ", {"type": "bold", "text": "this"}, " link"]
        if i % 11 == 0:
            m["reply_to_message_id"] = i - 1
        if i % 13 == 0:
            m.update(photo="(File not included. Change data exporting settings to download.)", width=800, height=600)
        if i % 17 == 0:
            m["edited"] = (when + timedelta(minutes=2)).isoformat()
            m["edited_unixtime"] = str(int((when + timedelta(minutes=2)).timestamp()))
        messages.append(m)
    return json.dumps({"name": "Shop Chat", "type": "public_supergroup", "id": 1234567890, "messages": messages},
                      ensure_ascii=False, indent=1).encode()


def whatsapp_export(n: int) -> bytes:
    rng = random.Random(2)
    start = datetime(2023, 1, 1, 8)
    lines = []
    for i in range(n):
        when = start + timedelta(seconds=37 * i)
        who = "Shop" if i % 3 == 0 else "+34 612 34 56 78"
        text = " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
        if i % 9 == 0:
            text += "\nsecond line"
        if i % 13 == 0:
            text = "<Media omitted>"
        lines.append(f"{when:%d/%m/%Y, %H:%M} - {who}: {text}")
    return ("\n".join(lines) + "\n").encode()


def split_lines(data: bytes) -> int:
    """The baseline: read-and-split, the least a parser of this format does."""
    n = 0
    for line in data.decode("utf-8").splitlines():
        _, sep, rest = line.partition(" - ")
        if sep:
            rest.partition(": ")
            n += 1
    return n


def run() -> bool:
    from chalicelib.storage import FolderStorage
    from chatlake.imports import load

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tg = telegram_export(N)
        wa = whatsapp_export(N)
        path = Path(tmp) / "result.json"
        path.write_bytes(tg)
        for name, data, baseline, what in (
            ("telegram", tg, lambda _: timed(lambda: json.loads(path.read_bytes())), "json.load"),
            ("whatsapp", wa, lambda _: timed(lambda: split_lines(wa)), "read-and-split"),
        ):
            def ours(i: int, name: str = name, data: bytes = data) -> float:
                root = Path(tmp) / f"lake-{name}-{i}"
                storage = FolderStorage(root)
                if name == "telegram":
                    seconds = timed(lambda: load.import_telegram(storage, data, zone=ZONE, zone_name="Europe/Madrid"))
                else:
                    seconds = timed(lambda: load.import_whatsapp(storage, data, WA_NAME, zone=ZONE,
                                                                 zone_name="Europe/Madrid", me="Shop"))
                shutil.rmtree(root)
                return seconds

            mine, base = alternate(ours, baseline, rounds=3)
            print(f"{name} export of {N:,} messages ({len(data) / 2**20:.1f} MiB): import {N / mine:,.0f} messages/s, "
                  f"{what} {N / base:,.0f} messages/s", flush=True)
            ok &= report(f"import {name}-export", mine, base, GOAL, what=what)
        whatsapp_floor(wa)
    return ok


def whatsapp_floor(data: bytes) -> None:
    """For information: the steps no importer of a WhatsApp text can skip, each timed alone in this run against the
    same read-and-split. Their sum is what the import cannot go below, whatever its parser does (docs/imports.md)."""
    import hashlib

    import pyarrow as pa

    from chalicelib import parquet
    from chatlake.imports import rows as import_rows
    from chatlake.imports import whatsapp_export

    rows = whatsapp_export.parse(data, "chat", "k", ZONE, me="Shop").rows
    identities = [f"{r[3]}\x00{r[2]}\x00{r[10]}\x00{r[13]}".encode() for r in rows]
    columns = list(zip(*rows, strict=True))
    varying = [list(columns[i]) for i in (1, 2, 5, 9, 10, 12, 13, 18)]  # id, time, type, sender x3, text, direction
    table = import_rows.sorted_table(rows)

    def headers() -> None:  # read, split, and the header pattern on every line (a C call per line, nothing kept)
        match = whatsapp_export.HEADER.match
        for line in data.decode("utf-8").splitlines():
            match(line)

    def digests() -> None:  # a digest per message, for its id
        sha256 = hashlib.sha256
        for b in identities:
            sha256(b).hexdigest()

    def to_arrow() -> None:  # the columns that differ from message to message, from Python values to Arrow
        for values in varying:
            pa.array(values)

    steps = {"the header pattern on every line": headers, "a SHA-256 per message for its id": digests,
             "the varying columns into Arrow": to_arrow, "the Parquet encoding": lambda: parquet.table_bytes(table)}
    times: dict[str, list[float]] = {name: [] for name in ["read-and-split", *steps]}
    for _ in range(3):
        times["read-and-split"].append(timed(lambda: split_lines(data)))
        for name, step in steps.items():
            times[name].append(timed(step))
    base = statistics.median(times.pop("read-and-split"))
    ratios = {name: statistics.median(t) / base for name, t in times.items()}
    parts = ", ".join(f"{name} {r:.2f}x" for name, r in ratios.items())
    print(f"  (for information) the steps an import of the WhatsApp text cannot skip, each timed alone against the "
          f"same read-and-split: {parts}; together {sum(ratios.values()):.2f}x, against the goal of {GOAL}x",
          flush=True)
