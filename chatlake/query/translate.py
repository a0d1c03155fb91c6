"""Athena SQL rewritten with sqlglot: translated to DuckDB's dialect (remembered on disk, `Translator`), or
narrowed to the days from one on (`since_day`). sqlglot is imported lazily: never on the webhook path."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .engine import QueryError
from .templates import TABLES, strip_statement


def to_duckdb(sql: str) -> str:
    """One Athena (Trino) statement as DuckDB SQL. What sqlglot knows DuckDB cannot do is an error, not a
    silently different query. Types are inferred where sqlglot can (literals, counts), so that integer
    division truncates as on Athena (`7 / 2` is 3)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError
    from sqlglot.optimizer.annotate_types import annotate_types

    try:
        trees = [t for t in sqlglot.parse(sql, read="athena") if t is not None]
        if len(trees) > 1:
            raise QueryError(f"one statement at a time, please: this SQL has {len(trees)}")
        out = [_typed(t, annotate_types).sql("duckdb", unsupported_level=ErrorLevel.RAISE) for t in trees]
    except ParseError as e:
        where = "; ".join(f"{d['description']} at line {d['line']}, column {d['col']} (near "
                          f"{(d['start_context'] + d['highlight']).strip()[-40:]!r})" for d in e.errors[:3])
        raise QueryError(f"SQL syntax error: {where or e}") from None
    except UnsupportedError as e:
        raise QueryError(f"DuckDB cannot run this Athena SQL: {e}") from None
    except SqlglotError as e:
        raise QueryError(f"SQL syntax error: {e}") from None
    if not out or not out[0].strip():
        raise QueryError("there is no SQL statement to run")
    return out[0]


def _typed(tree: Any, annotate: Callable[[Any], Any]) -> Any:
    """The tree with inferred types; type inference only refines the translation, so a query it trips on is
    translated without it rather than refused."""
    try:
        return annotate(tree)
    except Exception:
        return tree


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/chatlake/sql (~/.cache/chatlake/sql)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chatlake" / "sql"


@dataclass(frozen=True)
class Translator:
    """Athena SQL -> DuckDB SQL (`to_duckdb`), remembered on disk: importing sqlglot and loading its dialects
    takes longer than a typical query over the lake, and the same views and pack files run again and again.
    The key covers the SQL, this code's version and the installed sqlglot (found without importing it), so an
    upgrade translates afresh. A cache that cannot be read or written is skipped, never an error."""

    cache: Path | None = None
    version: str = "2"  # bump when to_duckdb's output changes for the same sqlglot

    def __call__(self, sql: str) -> str:
        path = self._path(sql) if self.cache else None
        if path is not None:
            try:
                return path.read_text(encoding="utf-8")
            except OSError:
                pass
        translated = to_duckdb(sql)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_text(translated, encoding="utf-8")
                os.replace(tmp, path)
            except OSError:
                pass
        return translated

    def _path(self, sql: str) -> Path | None:
        import hashlib
        from importlib.util import find_spec

        spec = find_spec("sqlglot")
        if spec is None or not spec.origin or self.cache is None:
            return None
        try:
            st = os.stat(spec.origin)
        except OSError:
            return None
        key = f"{self.version}\0{spec.origin}\0{st.st_mtime_ns}\0{st.st_size}\0{sql}"
        return self.cache / f"{hashlib.sha256(key.encode()).hexdigest()}.sql"


def since_day(sql: str, first_day: date) -> str:
    """The same query over the days from `first_day` on: each read of a lake table becomes a read of that table
    filtered on its `dt` partition (on Athena, partition projection then scans only those days)."""
    import sqlglot
    from sqlglot import exp

    def limit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name in TABLES and not node.db:
            where = exp.GTE(this=exp.column("dt"), expression=exp.Literal.string(first_day.isoformat()))
            return exp.select("*").from_(exp.to_table(node.name)).where(where).subquery(node.alias or node.name)
        return node

    return sqlglot.parse_one(strip_statement(sql), read="athena").transform(limit).sql(dialect="athena")
