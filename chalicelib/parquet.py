"""The lake's two ways of writing a Parquet file, so that every writer of a kind gives the same bytes.

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


def record_bytes(data: Any) -> bytes:
    """An Arrow table as one of the pipeline's own records (checksummed pages)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd", write_page_checksum=True)
    return buffer.getvalue()
