"""The lake's two ways of writing a Parquet file, so that every writer of a kind gives the same bytes, and the one
way of reading a column back as Python values.

- `table_bytes`: a table people query (`messages`, `statuses`, `rejects`, `media`): zstd, dictionaries and
  statistics. The full run, the fan-out's merge, imports and `forget` all write through it, so the same rows give
  the same bytes whoever wrote them.
- `record_bytes`: a file the pipeline keeps for itself (a day's versions, the mentions index): zstd with page
  checksums, so that a damaged file is found and rebuilt rather than believed.

pyarrow is imported when a file is written (never on the webhook path).
"""

from __future__ import annotations

import io
from typing import Any


def table_bytes(data: Any) -> bytes:
    """An Arrow table as a lake table's file."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd", use_dictionary=True, write_statistics=True)
    return buffer.getvalue()


def values(data: Any, name: str) -> list[Any]:
    """A column of an Arrow table as Python values, a timestamp as ms since the epoch (as the parsers give it).
    Never as datetimes: pyarrow makes an aware one by trying to import pytz, for every value where it is missing."""
    import pyarrow as pa

    column = data.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz=column.type.tz)).cast(pa.int64())
    return column.to_pylist()


def record_bytes(data: Any) -> bytes:
    """An Arrow table as one of the pipeline's own records (checksummed pages)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd", write_page_checksum=True)
    return buffer.getvalue()
