"""SQL over the lake: the same Athena SQL in AWS (Athena) and on a laptop (DuckDB over the lake's Parquet).

- `templates`: the `sql/` files (DDL templates, the analytics pack) and the DDL `setup-athena` runs;
- `translate`: Athena SQL -> DuckDB with sqlglot (cached on disk), and `since_day`;
- `results`: `Result` and writing it as a table, CSV or JSON;
- `engine`: the `Engine` protocol both engines implement, and `QueryError`;
- `duckdb`, `athena`: the engines. They receive their client (a duckdb connection, a boto3 Athena client);
  `connect_duckdb` and `make_athena_client` build the real ones.

duckdb, sqlglot and boto3 are imported lazily, inside the functions that use them: importing this package (the
CLI does, to start) loads none of them, and the webhook path never imports it.
"""

from __future__ import annotations

from .athena import AthenaEngine, athena_engine, make_athena_client, setup_athena
from .duckdb import DuckDBEngine, connect_duckdb, duckdb_engine, names_in
from .engine import Engine, QueryError
from .results import FORMATS, Result, csv_value, json_value, spreadsheet_text, write_result
from .templates import (
    PROJECTION_START,
    TABLES,
    VIEWS,
    SqlFile,
    SqlNotFound,
    Statement,
    analytics,
    athena_ddl,
    athena_location,
    check_database,
    format_ddl,
    render,
    resolve_sql,
    strip_statement,
)
from .translate import Translator, default_cache_dir, since_day, to_duckdb

__all__ = [
    "FORMATS", "PROJECTION_START", "TABLES", "VIEWS", "AthenaEngine", "DuckDBEngine", "Engine", "QueryError",
    "Result", "SqlFile", "SqlNotFound", "Statement", "Translator", "analytics", "athena_ddl", "athena_engine",
    "athena_location", "check_database", "connect_duckdb", "csv_value", "default_cache_dir", "duckdb_engine",
    "format_ddl", "json_value", "make_athena_client", "names_in", "render", "resolve_sql", "setup_athena",
    "since_day", "spreadsheet_text", "strip_statement", "to_duckdb", "write_result",
]
