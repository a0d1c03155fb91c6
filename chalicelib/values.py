"""Reading untrusted JSON: the one `decode` (webhook and ETL) and the one set of value readers (both parsers).

A body the webhook accepts must be one the ETL can read, and the Telegram and WhatsApp parsers must agree on what an
empty value, a usable time or a clean string is: so each rule is written once, here. Pure and light (orjson and the
standard library only): the webhook imports it on every cold start, the ETL calls the readers millions of times a
run, so they are plain type checks with no copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

# 9999-12-31T23:59:59Z: a later time is none Parquet (ms) or Athena can hold, and no real message's.
MAX_UNIX_SECONDS = 253_402_300_799
INT64_LIMIT = 1 << 63
EMPTY: Mapping[str, Any] = MappingProxyType({})
_EMPTY_TYPES = (str, list, dict)
# Every UTF-16 surrogate code point -> U+FFFD, for `str.translate`.
_SURROGATES = dict.fromkeys(range(0xD800, 0xE000), "\ufffd")


# --- bytes -> JSON -------------------------------------------------------------------------------------------------


def json_int(digits: str) -> int | str:
    """A JSON integer as an int, or as its digit string past Python's int-string limit (4300 digits): the limit
    guards against quadratic conversions, so it stays in place, but such a number is valid JSON all the same."""
    try:
        return int(digits)
    except ValueError:
        return digits


def decode(body: bytes) -> Any:
    """JSON from bytes: orjson for speed (nearly every delivery), the standard library for what orjson refuses but
    JSON allows (lone surrogate escapes, NaN, integers past 64 bits). An integer past Python's int-string limit stays
    its digit string. Raises UnicodeDecodeError (not UTF-8), ValueError (not JSON) or RecursionError (too deep)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # only the int-string limit raises a plain ValueError: read again, keeping the digits
        # Only then: a Python `parse_int` costs a call per integer, and a stack frame where deep nesting fails.
        return json.loads(text, parse_int=json_int)


# --- JSON values -> row values -------------------------------------------------------------------------------------


def present(value: Any) -> Any:
    """The value, or None when it is `false`, `null`, `""`, `[]` or `{}`: client libraries that re-serialise a
    payload (python-telegram-bot's `to_json()`, proxies in front of Meta) write those for fields they do not have, so
    they mean exactly what a missing field means. `0`, `0.0` and `true` are values."""
    if value is None or value is False or (not value and type(value) in _EMPTY_TYPES):
        return None
    return value


def get(obj: Mapping[str, Any], key: str) -> Any:
    """obj[key] when it is present (see `present`), else None: how the parsers read a field."""
    value = obj.get(key)
    if value is None or value is False or (not value and type(value) in _EMPTY_TYPES):
        return None
    return value


def mapping(value: Any) -> Mapping[str, Any]:
    """The value when it is a JSON object, else an empty read-only one (so `get` chains stay safe)."""
    return value if isinstance(value, dict) else EMPTY


def string(value: Any) -> str | None:
    """A non-empty string ("" means absent), safe to write as UTF-8 (see `clean`); None for anything else."""
    if type(value) is not str or not value:
        return None
    return value if value.isascii() else clean(value)


def clean(text: str) -> str:
    """The text with each lone UTF-16 surrogate (valid JSON as `\\ud800`, not UTF-8) made one U+FFFD, so Parquet can
    hold it and the day's write cannot fail on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.translate(_SURROGATES)
    return text


def integer(value: Any) -> int | None:
    """An integer, also from a whole float (some re-encoders write 5.0); never from a bool or a string."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():
        return int(value)
    return None


def int64(value: Any) -> int | None:
    """A JSON integer that fits a signed 64-bit column (never a bool, a float or a string)."""
    return value if type(value) is int and -INT64_LIMIT <= value < INT64_LIMIT else None


def digits(value: Any, max_len: int) -> int | None:
    """The number a string of 1 to `max_len` ASCII digits spells (no sign, space, point or exponent), else None."""
    if type(value) is str and 0 < len(value) <= max_len and value.isascii() and value.isdigit():
        return int(value)
    return None


def millis(seconds: int | None) -> int | None:
    """Unix seconds as milliseconds, or None when not a time the tables hold: after 1970-01-01T00:00:00Z and no
    later than `MAX_UNIX_SECONDS`."""
    if seconds is None or not 0 < seconds <= MAX_UNIX_SECONDS:
        return None
    return seconds * 1000
