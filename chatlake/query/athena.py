"""Athena SQL on Athena: start a query, poll it with bounded backoff, read the paginated results in Python
types; and `setup-athena`, which runs the DDL. boto3 is imported lazily: never on the webhook path."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from chalicelib.settings import Settings

from .engine import QueryError
from .results import Result
from .templates import Statement, check_database, strip_statement


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


def athena_engine(settings: Settings, client: Any) -> AthenaEngine:
    """The engine for ATHENA_DATABASE, ATHENA_WORKGROUP and ATHENA_OUTPUT_URL, on `client`
    (`make_athena_client()`, or a stub in tests)."""
    return AthenaEngine(client, check_database(settings.athena_database),
                        settings.get("ATHENA_WORKGROUP"), settings.get("ATHENA_OUTPUT_URL"))


def setup_athena(engine: AthenaEngine, statements: Sequence[Statement],
                 echo: Callable[[str], None] = print) -> None:
    """Run the DDL in order. Idempotent: IF NOT EXISTS for the database and tables (an existing table is left as
    it is), OR REPLACE for the views (so they always match sql/views)."""
    for i, statement in enumerate(statements):
        engine.execute(statement.sql, None if i == 0 else engine.database)  # the database may not exist before
        echo(f"ok  {statement.name}")
