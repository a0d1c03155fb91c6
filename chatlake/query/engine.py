"""What the CLI and the report run Athena SQL on: one protocol, two engines (DuckDB over the lake, Athena)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .results import Result


class QueryError(Exception):
    """The engine could not run the SQL. The message is the engine's own; the CLI prints it and exits 1."""


@runtime_checkable
class Engine(Protocol):
    """Runs one Athena (Trino) statement and returns its rows; any failure is a QueryError. `DuckDBEngine` and
    `AthenaEngine` both are one, so `query` and `report` never ask which they were given."""

    def run(self, sql: str) -> Result: ...
