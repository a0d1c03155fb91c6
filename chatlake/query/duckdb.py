"""Athena SQL on DuckDB: views over the lake's Parquet (a folder, or S3 through httpfs) with the Athena tables'
names and types, hive partitioning (`dt` a string as in Athena), and each statement translated by sqlglot."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import layout
from chalicelib.schema import COLUMNS, DUCKDB_TYPES
from chalicelib.settings import ConfigError
from chalicelib.storage import FolderStorage, S3Storage, Storage

from .engine import QueryError
from .results import Result
from .templates import SQL_DIR, TABLES, VIEWS, read_sql_file, render, strip_statement
from .translate import Translator, default_cache_dir, to_duckdb


def connect_duckdb() -> Any:
    """An in-memory DuckDB that computes in UTC (like Athena) and prints no progress bar into the output."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def names_in(sql: str, names: Iterable[str]) -> set[str]:
    """Which of `names` occur in `sql` as words (a mention in a comment counts too: creating a view too many
    is harmless)."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
    return {n for n in names if n in words}


def lake_root(storage: Storage) -> str:
    """Where DuckDB finds the lake: a local folder, or s3://bucket/prefix."""
    if isinstance(storage, FolderStorage):
        return str(storage.root)
    if isinstance(storage, S3Storage):
        return f"s3://{storage.bucket}/{storage.prefix}".rstrip("/")
    raise ConfigError(f"DuckDB cannot read a lake at {storage.url}")


def table_view_sql(table: str, root: str | None) -> str:
    """A DuckDB view with the Athena table's columns and types: over the table's Parquet files, or empty when
    `root` is None (the table has no files yet), so queries still run instead of failing."""
    columns = COLUMNS[table]
    if root is None:
        select = ", ".join(f"CAST(NULL AS {DUCKDB_TYPES[kind]}) AS {name}" for name, kind in columns.items())
        return f"CREATE OR REPLACE VIEW main.{table} AS SELECT {select}, CAST(NULL AS VARCHAR) AS dt WHERE false"
    # Parquet timestamps are UTC instants (TIMESTAMPTZ in DuckDB); Athena's `timestamp` is the same instant
    # without a zone, so hour(), date_format() and the output match Athena. Rebuilt from epoch microseconds:
    # a CAST would go through the time zone library for every value (a third slower on the benchmark).
    select = ", ".join(f"make_timestamp(epoch_us({name})) AS {name}" if kind == "timestamp" else name
                       for name, kind in columns.items())
    source = (f"read_parquet({_quote(f'{root}/{layout.table_glob(table)}')}, hive_partitioning = true, "
              "hive_types = {'dt': 'VARCHAR'}, union_by_name = true)")
    return f"CREATE OR REPLACE VIEW main.{table} AS SELECT {select}, dt FROM {source}"


def s3_setup_sql(region: str | None) -> list[str]:
    """Credentials for s3:// the way the AWS CLI finds them (env, profile, SSO, instance role)."""
    secret = "CREATE OR REPLACE SECRET chatlake_s3 (TYPE s3, PROVIDER credential_chain"
    return [secret + (f", REGION {_quote(region)})" if region else ")")]


def _load_extension(con: Any, name: str) -> None:
    import duckdb

    try:
        con.execute(f"LOAD {name}")
        return
    except duckdb.Error:
        pass
    try:
        con.execute(f"INSTALL {name}")
        con.execute(f"LOAD {name}")
    except duckdb.Error as e:
        reason = str(e).strip().splitlines()[0]
        raise QueryError(
            f"reading the lake on S3 needs DuckDB's {name!r} extension, which is not installed and could not be "
            f"downloaded ({reason}). Install it once where the internet is reachable: "
            "python -c \"import duckdb; duckdb.sql('INSTALL httpfs; INSTALL aws')\" "
            "(or copy ~/.duckdb/extensions from such a machine), or run the query on Athena: --engine athena"
        ) from None


@dataclass
class DuckDBEngine:
    """Athena SQL on DuckDB, over views of the lake's Parquet (a folder, or S3 through httpfs)."""

    con: Any
    storage: Storage
    translate: Callable[[str], str] = to_duckdb
    _created: set[str] = field(default_factory=set)

    def prepare(self, sql: str = "") -> None:
        """Create the views `sql` names (and the tables they read), or all of them when it names none (SHOW
        TABLES, information_schema): a table view is empty when the table has no files yet."""
        templates = {v: read_sql_file(SQL_DIR / "views" / f"{v}.sql").statement for v in VIEWS}
        wanted = names_in(sql, (*TABLES, *VIEWS)) or {*TABLES, *VIEWS}
        wanted |= {t for v in wanted & set(VIEWS) for t in names_in(templates[v], TABLES)}
        todo = [n for n in (*TABLES, *VIEWS) if n in wanted and n not in self._created]
        if not todo:
            return
        root = lake_root(self.storage)
        if root.startswith("s3://") and not self._created:
            for extension in ("httpfs", "aws"):
                _load_extension(self.con, extension)
            for statement in s3_setup_sql(os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
                self._execute(statement)
        for name in todo:
            if name in TABLES:
                self._execute(table_view_sql(name, root if self._has_files(name) else None))
            else:
                self._execute(self.translate(render(templates[name], {"database": "main"})))
            self._created.add(name)

    def _has_files(self, table: str) -> bool:
        return any(k.endswith(".parquet") for k in self.storage.keys(layout.table_prefix(table)))

    def _execute(self, sql: str) -> None:
        import duckdb

        try:
            self.con.execute(sql)
        except duckdb.Error as e:
            raise QueryError(str(e).strip()) from None

    def run(self, sql: str) -> Result:
        self.prepare(sql)
        duck = self.translate(sql)
        import duckdb

        try:
            cursor = self.con.execute(duck)
            if cursor.description is None:
                return Result([])
            columns = [d[0] for d in cursor.description]
            return Result(columns, cursor.fetchall())
        except duckdb.Error as e:
            message = str(e).strip()
            if " ".join(duck.split()) != " ".join(strip_statement(sql).split()):
                message += f"\n(the query as DuckDB ran it, after translation from Athena SQL: {duck})"
            raise QueryError(message) from None


def duckdb_engine(storage: Storage, cache: Path | None = None) -> DuckDBEngine:
    """The engine `query`, the demo and the report use locally: a fresh in-memory DuckDB over `storage`, with
    translations remembered in `cache` (default: `default_cache_dir()`)."""
    return DuckDBEngine(connect_duckdb(), storage, Translator(cache or default_cache_dir()))
