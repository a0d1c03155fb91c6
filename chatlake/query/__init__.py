"""SQL over the lake: the same Athena SQL in AWS (Athena) and on a laptop (DuckDB over the lake's Parquet).

`sql/tables/` and `sql/views/` hold the Athena DDL as templates: `{{database}}`, `{{location}}`,
`{{projection_start}}`, and the column lists `{{column_definitions:<table>}}` / `{{column_names:<table>}}`,
rendered from schema.COLUMNS so the columns are defined in one place. `sql/analytics/` holds one query per
question, in Athena's dialect (Trino). On DuckDB, sqlglot transpiles each statement and the tables are views
over `enriched/<table>/dt=*/*.parquet` (hive partitioning, `dt` a string as in Athena).

Engines receive their client (a duckdb connection, a boto3 Athena client); `connect_duckdb` and
`make_athena_client` build the real ones. duckdb, sqlglot and boto3 are imported lazily, only here: never
on the webhook path.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

from chalicelib import layout
from chalicelib.schema import ATHENA_TYPES, COLUMNS
from chalicelib.settings import ConfigError, Settings
from chalicelib.storage import FolderStorage, S3Storage, Storage
from chatlake import PROJECT_DIR

SQL_DIR = PROJECT_DIR / "sql"
TABLES = layout.TABLES
VIEWS = ("messages_latest", "message_status_latest")  # in creation order
#: The first day partition projection considers. Days before it are invisible to Athena: a lake with older
#: data needs a smaller value here (and `setup-athena` after dropping the tables).
PROJECTION_START = "2020-01-01"
DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "bool": "BOOLEAN", "int": "BIGINT"}
FORMATS = ("table", "csv", "json")

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?::([a-z_]+))?\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QueryError(Exception):
    """The engine could not run the SQL. The message is the engine's own; the CLI prints it and exits 1."""


class SqlNotFound(ValueError):
    """The argument names a `.sql` file that does not exist (bad usage, exit 2)."""


# --- sql/ files and templates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlFile:
    """One file of `sql/`: the leading `--` lines say what it is for, the rest is one statement."""

    name: str
    path: Path
    text: str

    @property
    def comment(self) -> str:
        lines = []
        for line in self.text.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line)
        return "\n".join(lines)

    @property
    def description(self) -> str:
        """The comment as one sentence (for listings)."""
        return " ".join(line[2:].strip() for line in self.comment.splitlines())

    @property
    def statement(self) -> str:
        """The statement without the leading comment and trailing semicolon (Athena's DDL parser wants
        nothing before CREATE)."""
        body = self.text.splitlines()[len(self.comment.splitlines()) if self.comment else 0:]
        return strip_statement("\n".join(body))


def strip_statement(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip()


def read_sql_file(path: Path) -> SqlFile:
    return SqlFile(path.stem, path, path.read_text(encoding="utf-8"))


def sql_files(folder: str) -> list[SqlFile]:
    """The files of one `sql/` folder (tables, views, analytics), by name."""
    return [read_sql_file(p) for p in sorted((SQL_DIR / folder).glob("*.sql"))]


def analytics() -> list[SqlFile]:
    """The analytics pack: one question per file."""
    return sql_files("analytics")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `{{name}}` from `values` and `{{column_definitions:t}}` / `{{column_names:t}}` from schema.COLUMNS;
    an unknown placeholder is an error, never left in SQL sent to an engine."""

    def fill(m: re.Match[str]) -> str:
        key, table = m.groups()
        if table is not None and table in COLUMNS:
            if key == "column_definitions":
                return ",\n".join(f"  `{name}` {ATHENA_TYPES[kind]}" for name, kind in COLUMNS[table].items())
            if key == "column_names":
                return ", ".join(COLUMNS[table])
        elif table is None and key in values:
            return values[key]
        raise ValueError(f"unknown placeholder {m.group(0)} in an sql/ template")

    return _PLACEHOLDER.sub(fill, template)


def check_database(name: str) -> str:
    """ATHENA_DATABASE goes into DDL unquoted: letters, digits and underscores only."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"ATHENA_DATABASE {name!r} must be letters, digits and underscores (e.g. chatlake)")
    return name


def athena_location(datalake_url: str) -> str:
    """The lake's root as Athena's table LOCATION needs it: s3://bucket[/prefix], no trailing slash."""
    if not datalake_url.startswith("s3://") or not urlparse(datalake_url).netloc:
        raise ConfigError(
            f"Athena reads the lake from S3, but DATALAKE_URL is {datalake_url!r}: set DATALAKE_URL=s3://bucket[/prefix]"
            " (where the webhooks write) for ddl and setup-athena; on this machine, `query` runs the same SQL on DuckDB"
        )
    return datalake_url.rstrip("/")


@dataclass(frozen=True)
class Statement:
    """One DDL statement, what it creates, and the comment that explains it."""

    name: str
    sql: str
    comment: str = ""


def athena_ddl(database: str, location: str, projection_start: str = PROJECTION_START) -> list[Statement]:
    """Every statement `setup-athena` runs, in order: the database, the tables, the views."""
    values = {"database": check_database(database), "location": location, "projection_start": projection_start}
    statements = [Statement(f"database {database}", f"CREATE DATABASE IF NOT EXISTS {database}",
                            "-- The Glue database that holds chatlake's tables and views (ATHENA_DATABASE).")]
    for kind, names in (("table", TABLES), ("view", VIEWS)):
        for name in names:
            f = read_sql_file(SQL_DIR / f"{kind}s" / f"{name}.sql")
            statements.append(Statement(f"{kind} {database}.{name}", render(f.statement, values), f.comment))
    return statements


def format_ddl(statements: Iterable[Statement]) -> str:
    return "\n\n".join(f"{s.comment}\n{s.sql};" if s.comment else f"{s.sql};" for s in statements) + "\n"


# --- Athena SQL -> DuckDB -----------------------------------------------------------------------------------------


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


# --- results ------------------------------------------------------------------------------------------------------


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


# --- DuckDB -------------------------------------------------------------------------------------------------------


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
    source = (f"read_parquet({_quote(f'{root}/enriched/{table}/dt=*/*.parquet')}, hive_partitioning = true, "
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
        return any(k.endswith(".parquet") for k in self.storage.keys(f"enriched/{table}/"))

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


# --- Athena -------------------------------------------------------------------------------------------------------


def make_athena_client() -> Any:
    """An Athena client with adaptive retries (throttling backs off), in the AWS CLI's region and credentials."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.client("athena", config=Config(retries={"max_attempts": 8, "mode": "adaptive"}))
    except BotoCoreError as e:  # no region configured, a broken profile, ...
        raise QueryError(f"Athena: {e} (set AWS_REGION, or a region in your AWS profile)") from None


def _athena_value(text: str | None, kind: str) -> Any:
    """One result cell (Athena returns text) in the Python type of its column."""
    if text is None:
        return None
    kind = kind.lower()
    try:
        if kind in ("tinyint", "smallint", "integer", "int", "bigint"):
            return int(text)
        if kind in ("double", "float", "real"):
            return float(text)
        if kind == "decimal":
            return Decimal(text)
        if kind == "boolean":
            return text == "true"
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "timestamp":
            return datetime.fromisoformat(text)
    except ValueError:
        pass  # an unexpected rendering: keep Athena's text rather than fail the whole result
    return text


@dataclass
class AthenaEngine:
    """Queries on Athena: start, poll with bounded exponential backoff, read the paginated results."""

    client: Any
    database: str
    workgroup: str | None = None
    output_location: str | None = None
    timeout: float = 1800.0  # Athena's own default limit for a query is 30 minutes
    first_delay: float = 0.2
    max_delay: float = 5.0
    page_size: int = 1000  # GetQueryResults' maximum
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**params)
        except ClientError as e:
            raise QueryError(f"Athena: {e.response.get('Error', {}).get('Message') or e}") from None
        except BotoCoreError as e:
            raise QueryError(f"Athena: {e}") from None

    def start(self, sql: str, database: str | None) -> str:
        params: dict[str, Any] = {"QueryString": strip_statement(sql)}
        if database:
            params["QueryExecutionContext"] = {"Database": database}
        if self.workgroup:
            params["WorkGroup"] = self.workgroup
        if self.output_location:
            params["ResultConfiguration"] = {"OutputLocation": self.output_location}
        return self._call("start_query_execution", **params)["QueryExecutionId"]

    def wait(self, query_id: str) -> dict[str, Any]:
        """The finished execution; FAILED or CANCELLED raise with Athena's reason; past `timeout` the query is
        stopped (it would keep running, and billing, otherwise)."""
        deadline = self.clock() + self.timeout
        delay = self.first_delay
        try:
            while True:
                execution = self._call("get_query_execution", QueryExecutionId=query_id)["QueryExecution"]
                status = execution["Status"]
                state = status["State"]
                if state == "SUCCEEDED":
                    return execution
                if state in ("FAILED", "CANCELLED"):
                    reason = (status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
                              or f"the query was {state.lower()}")
                    raise QueryError(f"Athena: {reason}")
                if self.clock() + delay > deadline:
                    self._call("stop_query_execution", QueryExecutionId=query_id)
                    raise QueryError(f"Athena: query {query_id} did not finish within {self.timeout:g} s; "
                                     "it was cancelled")
                self.sleep(delay)
                delay = min(delay * 2, self.max_delay)
        except KeyboardInterrupt:
            self._call("stop_query_execution", QueryExecutionId=query_id)
            raise

    def execute(self, sql: str, database: str | None = None) -> dict[str, Any]:
        """Run a statement to the end (DDL), without reading results."""
        return self.wait(self.start(sql, database))

    def run(self, sql: str) -> Result:
        execution = self.execute(sql, self.database)
        header = execution.get("StatementType", "DML") == "DML"  # a SELECT's first row repeats the column names
        from botocore.exceptions import BotoCoreError, ClientError

        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        pages = self.client.get_paginator("get_query_results").paginate(
            QueryExecutionId=execution["QueryExecutionId"], PaginationConfig={"PageSize": self.page_size})
        try:
            for number, page in enumerate(pages):
                result_set = page["ResultSet"]
                if number == 0:
                    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                    columns = [c.get("Label") or c["Name"] for c in info]
                    types = [c.get("Type", "varchar") for c in info]
                data = result_set.get("Rows", [])
                if number == 0 and header and data:
                    data = data[1:]
                for row in data:
                    cells = [d.get("VarCharValue") for d in row.get("Data", [])]
                    rows.append(tuple(_athena_value(v, t) for v, t in zip(cells, types, strict=False)))
        except ClientError as e:
            raise QueryError(f"Athena: {e.response.get('Error', {}).get('Message') or e}") from None
        except BotoCoreError as e:
            raise QueryError(f"Athena: {e}") from None
        return Result(columns, rows)


def athena_engine(settings: Settings, client: Any = None) -> AthenaEngine:
    """The engine for ATHENA_DATABASE, ATHENA_WORKGROUP and ATHENA_OUTPUT_URL."""
    return AthenaEngine(client or make_athena_client(), check_database(settings.athena_database),
                        settings.get("ATHENA_WORKGROUP"), settings.get("ATHENA_OUTPUT_URL"))


def setup_athena(engine: AthenaEngine, statements: Sequence[Statement],
                 echo: Callable[[str], None] = print) -> None:
    """Run the DDL in order. Idempotent: IF NOT EXISTS for the database and tables (an existing table is left as
    it is), OR REPLACE for the views (so they always match sql/views)."""
    for i, statement in enumerate(statements):
        engine.execute(statement.sql, None if i == 0 else engine.database)  # the database may not exist before
        echo(f"ok  {statement.name}")


# --- the CLI verbs (cli.py stays thin) ----------------------------------------------------------------------------


def resolve_sql(sql_or_file: str) -> str:
    """The SQL text of the argument: a file path, a `sql/` file from anywhere (`sql/analytics/top_chats.sql`,
    `analytics/top_chats.sql`, `sql/top_chats.sql`, `top_chats`), or the SQL itself."""
    arg = sql_or_file.strip()
    if "\n" not in arg and len(arg) < 1024:
        name = arg if arg.endswith(".sql") else f"{arg}.sql"
        pack = SQL_DIR / "analytics" / name.removeprefix("sql/")
        for path in (Path(arg), SQL_DIR.parent / arg, SQL_DIR / arg, pack, SQL_DIR / name):
            if path.suffix == ".sql" and path.is_file():
                return path.read_text(encoding="utf-8")
        if arg.endswith(".sql") and " " not in arg:
            names = ", ".join(f.name for f in analytics())
            raise SqlNotFound(f"no such SQL file: {arg} (the analytics pack in sql/analytics: {names})")
    return sql_or_file


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


def make_engine(engine: str, settings: Settings) -> DuckDBEngine | AthenaEngine:
    """The engine `query`, the demo and the report run Athena SQL on: DuckDB over the lake, or Athena."""
    from chalicelib import runtime

    if engine == "athena":
        return athena_engine(settings)
    return DuckDBEngine(connect_duckdb(), runtime.storage(settings.datalake_url), Translator(default_cache_dir()))


def query_command(sql_or_file: str, engine: str = "duckdb", fmt: str = "table", out: TextIO | None = None,
                  settings: Settings | None = None) -> int:
    """`query`: run Athena SQL on DuckDB over the lake (default) or on Athena, and print the result."""
    from chalicelib import runtime

    result = make_engine(engine, settings or runtime.settings()).run(resolve_sql(sql_or_file))
    write_result(result, fmt, out or sys.stdout)
    return 0


def ddl_command(settings: Settings, out: TextIO | None = None) -> int:
    """`ddl`: print every statement `setup-athena` runs, in order."""
    statements = athena_ddl(check_database(settings.athena_database), athena_location(settings.datalake_url))
    (out or sys.stdout).write(format_ddl(statements))
    return 0


def setup_athena_command(settings: Settings, client: Any = None) -> int:
    """`setup-athena`: create (or bring up to date) the database, tables and views in AWS."""
    statements = athena_ddl(check_database(settings.athena_database), athena_location(settings.datalake_url))
    engine = athena_engine(settings, client)
    setup_athena(engine, statements)
    print(f"Athena is ready: database {engine.database}, tables {', '.join(TABLES)}, views {', '.join(VIEWS)}")
    return 0
