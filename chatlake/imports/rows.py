"""An export's rows as plain tuples in `Message` field order, and their Parquet files, one per day sent.

An export gives hundreds of thousands of rows at once. A tuple costs a fraction of a `Message` to make, and the
rows go to Arrow as one struct array instead of a lookup per field and row; a `Message` is made only where
shared code needs one (PII hashing, the deny list) or a person reads the rows (the parsers' `messages`). The files
are those `etl.to_parquet("messages", rows_of_the_day)` writes, byte for byte (a test holds them together): the same
schema, sort order and writer options, but all days converted and sorted at once, then written a slice per day.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from datetime import date, timedelta
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

from chalicelib.schema import COLUMNS, Message

if TYPE_CHECKING:
    import pyarrow as pa

Row = tuple  # the values of a Message, in FIELDS order
FIELDS = tuple(f.name for f in fields(Message))
# Positions of the fields the import reads (the parsers write whole rows, in FIELDS order).
SOURCE, MESSAGE_ID, SENT_AT, CHAT_ID, CHAT_TYPE = 0, 1, 2, 3, 4
EDITED_AT, SENDER_ID, SENDER_NAME, SENDER_PHONE, TEXT, MEDIA_MIME_TYPE, DIRECTION = 7, 9, 10, 12, 13, 15, 18
assert FIELDS[:5] == ("source", "message_id", "sent_at", "chat_id", "chat_type")
assert (FIELDS[EDITED_AT], FIELDS[SENDER_ID], FIELDS[SENDER_NAME], FIELDS[SENDER_PHONE], FIELDS[TEXT],
        FIELDS[MEDIA_MIME_TYPE], FIELDS[DIRECTION]) == ("edited_at", "sender_id", "sender_name", "sender_phone",
                                                        "text", "media_mime_type", "direction")

DAY_MS = 86_400_000
WRITERS = min(4, os.cpu_count() or 1)  # threads making the days' Parquet files
EPOCH_DAY = date(1970, 1, 1)
_values = attrgetter(*FIELDS)


def day_of(sent_at: int) -> date:
    """The UTC day of a time in ms since the epoch: the partition a row goes to."""
    return EPOCH_DAY + timedelta(days=sent_at // DAY_MS)


def days_sent(rows: list[Row]) -> Counter[int]:
    """Rows sent each day (days since the epoch, UTC), counted in C: no Python step per row."""
    return Counter(map(DAY_MS.__rfloordiv__, map(itemgetter(SENT_AT), rows)))


def as_messages(rows: list[Row]) -> list[Message]:
    return [Message(*r) for r in rows]


def of_messages(messages: list[Message]) -> list[Row]:
    return list(map(_values, messages))


def parquet_by_day(rows: list[Row], days: Counter[int]) -> Iterator[tuple[date, bytes, int]]:
    """(day sent, the day's `messages` Parquet file, its rows), day by day in order. `days`: the rows sent on each
    day (days since the epoch), which the caller has counted already."""
    from chalicelib import parquet

    if sum(days.values()) != len(rows):
        raise ValueError(f"{len(rows)} rows, but {sum(days.values())} counted by day")
    if not rows:
        return
    # Sorted as a whole by the ETL's keys (sent_at first), each day's rows are one slice, in the order the day's
    # own sort gives them: the keys leave no ties (the import keeps one row per source, message id and edit).
    table = sorted_table(rows)
    # Arrow encodes and compresses a file without holding the GIL: the days' files are made side by side, on
    # threads (no fork: the caller may run a progress bar's thread), a few ahead of the one given back (so the
    # files of a long export are not all held at once), in day order.
    making: deque[tuple[int, Future[bytes]]] = deque()
    offset = 0
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="import-parquet") as pool:
        for day in sorted(days):
            making.append((day, pool.submit(parquet.table_bytes, table.slice(offset, days[day]))))
            offset += days[day]
            if len(making) > 2 * WRITERS:
                yield _made(*making.popleft(), days)
        while making:
            yield _made(*making.popleft(), days)


def sorted_table(rows: list[Row]) -> pa.Table:
    """The rows as the `messages` table, sorted as the ETL sorts a day's rows."""
    import pyarrow as pa

    from chalicelib import etl

    schema = etl.arrow_schema("messages")
    # The tuples go to Arrow as one struct array (a C++ pass over the rows) rather than transposed in Python first.
    as_struct = pa.struct([schema.field(name) for name in FIELDS])
    table = pa.Table.from_struct_array(pa.array(rows, type=as_struct)).select(COLUMNS["messages"])
    return etl.sorted_table("messages", table)


def _made(day: int, making: Future[bytes], days: Counter[int]) -> tuple[date, bytes, int]:
    return EPOCH_DAY + timedelta(days=day), making.result(), days[day]
