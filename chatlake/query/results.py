"""A query's result, and writing it: a terminal table, CSV safe to open in a spreadsheet, or JSON."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")


@dataclass
class Result:
    """A query's columns and rows, in Python types (datetime for timestamps, naive = UTC)."""

    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        names = unique_names(self.columns)
        return [dict(zip(names, row, strict=True)) for row in self.rows]


def unique_names(columns: Sequence[str]) -> list[str]:
    """Column names as keys: `SELECT a, a` is legal SQL, a JSON object with two `a` is not."""
    seen: dict[str, int] = {}
    names = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        names.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return names


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"  # the lake's timestamps are UTC (Athena's timestamp has no zone)
    return value.isoformat()


def json_value(value: Any) -> Any:
    """A value JSON can carry: timestamps as ISO 8601, decimals as numbers, NaN/infinity as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return _iso(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)  # time, UUID, ...


#: A text cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP, "CSV
#: Injection"): a chat message "=HYPERLINK(...)" would run in the spreadsheet of whoever opens the export.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A sign followed by digits and separators only calls nothing: Telegram group ids (-1001234567, -1001234567:9)
#: and phone numbers stay exact.
_SIGNED_NUMBER = re.compile(r"[+-][0-9.,: ]*")


def spreadsheet_text(text: str) -> str:
    """A text cell for CSV: `'` before one a spreadsheet would read as a formula (OWASP's advice), so chat content
    opened in Excel is shown, never run. The exact text is in `--format json`."""
    if text.startswith(FORMULA_START) and not _SIGNED_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_value(value: Any) -> str:
    """One CSV cell: numbers and timestamps exactly, text safe to open in a spreadsheet (`spreadsheet_text`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return spreadsheet_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return _iso(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(json_value(value)) if isinstance(value, bytes | timedelta) else str(value)  # decimals exactly


def write_result(result: Result, fmt: str, out: TextIO) -> None:
    """The result as a terminal table (rich), CSV with a header row, or a JSON array of objects."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([csv_value(v) for v in row] for row in result.rows)
    elif fmt == "json":
        records = [{k: json_value(v) for k, v in r.items()} for r in result.records()]
        out.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]\n" if records
                  else "[]\n")
    elif fmt == "table":
        from chatlake import ui

        n = len(result.rows)
        ui.print_table(result.records(), unique_names(result.columns), title=f"{n:,} row{'s' if n != 1 else ''}")
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
