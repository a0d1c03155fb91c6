"""The `sql/` folder: Athena DDL templates and the analytics pack.

`sql/tables/` and `sql/views/` hold the Athena DDL as templates: `{{database}}`, `{{location}}`,
`{{projection_start}}`, and the column lists `{{column_definitions:<table>}}` / `{{column_names:<table>}}`,
rendered from schema.COLUMNS so the columns are defined in one place. `sql/analytics/` holds one query per
question, in Athena's dialect (Trino).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from chalicelib import layout
from chalicelib.schema import ATHENA_TYPES, COLUMNS
from chalicelib.settings import ConfigError
from chatlake import PROJECT_DIR

SQL_DIR = PROJECT_DIR / "sql"
TABLES = (*layout.TABLES, layout.MEDIA_TABLE)  # the ETL's tables, and the media table that capture writes
VIEWS = ("messages_latest", "message_status_latest", "messages_media")  # in creation order
#: The first day partition projection considers. Days before it are invisible to Athena: a lake with older
#: data needs a smaller value here (and `setup-athena` after dropping the tables).
PROJECTION_START = "2020-01-01"

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?::([a-z_]+))?\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SqlNotFound(ValueError):
    """The argument names a `.sql` file that does not exist (bad usage, exit 2)."""


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
