"""`query --engine athena` and `setup-athena` against moto: the calls made, polling, paginated results and their
types, a failed query's message, idempotent setup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws
from moto.athena.models import athena_backends
from moto.athena.responses import AthenaResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

from chalicelib.settings import load
from chatlake import cli, query

REGION = "us-east-1"
FAILING = "SELEC 1"
REASON = "line 1:1: mismatched input 'SELEC'. Expecting: 'ALTER', 'ANALYZE', 'CALL', 'CREATE', 'SELECT', <query>"


class Recorder:
    """The Athena calls a client makes, with the parameters the engine passed (not the wire format)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.athena", self.record)

    def record(self, params: dict[str, Any], event_name: str, **_: Any) -> None:
        self.calls.append((event_name.rsplit(".", 1)[-1], dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def started(self) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == "StartQueryExecution"]


@pytest.fixture
def athena(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Recorder]]:
    """A moto Athena with two things real Athena does and moto does not: results come in pages of MaxResults
    rows (NextToken), and a query with a syntax error FAILS with a StateChangeReason."""

    def paged_results(self: AthenaResponse) -> str:
        result = self.athena_backend.get_query_results(self._get_param("QueryExecutionId")).to_dict()
        rows = result["ResultSet"]["Rows"]
        start, size = int(self._get_param("NextToken") or 0), int(self._get_param("MaxResults") or 1000)
        result["ResultSet"]["Rows"] = rows[start:start + size]
        if start + size < len(rows):
            result["NextToken"] = str(start + size)
        return json.dumps(result)

    real_execution = AthenaResponse.get_query_execution

    def failing_execution(self: AthenaResponse) -> str:
        reply = json.loads(real_execution(self))
        if reply["QueryExecution"]["Query"].startswith(FAILING):
            reply["QueryExecution"]["Status"].update(State="FAILED", StateChangeReason=REASON)
        return json.dumps(reply)

    monkeypatch.setattr(AthenaResponse, "get_query_results", paged_results)
    monkeypatch.setattr(AthenaResponse, "get_query_execution", failing_execution)
    with mock_aws():
        client = boto3.client("athena", region_name=REGION)
        recorder = Recorder(client)
        monkeypatch.setattr(query, "make_athena_client", lambda: client)
        yield client, recorder
        state_manager.unset_transition("athena::execution")


def seed(rows: list[list[str | None]], columns: list[tuple[str, str]]) -> None:
    """Queue the result of the next query, header row first, as Athena returns a SELECT's result."""
    data = [{"Data": [{"VarCharValue": name} for name, _ in columns]}]
    data += [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
    info = [{"Name": name, "Label": name, "Type": kind} for name, kind in columns]
    reply = requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results",
                          json={"region": REGION, "results": [{"rows": data, "column_info": info}]})
    assert reply.status_code == 201


COLUMNS = [("day", "varchar"), ("messages", "bigint"), ("share", "double"), ("is_edit", "boolean"),
           ("first_at", "timestamp"), ("d", "date"), ("amount", "decimal")]
ROWS = [[f"2026-11-2{i}", str(100 + i), f"{i}.5", "true" if i % 2 else "false", f"2026-11-2{i} 09:0{i}:00.250",
         f"2026-11-2{i}", f"{i}.10"] for i in range(5)] + [[None, None, None, None, None, None, None]]


def test_query_on_athena_pages_through_results_and_converts_types(athena, monkeypatch):
    client, recorder = athena
    seed(ROWS, COLUMNS)
    engine = query.AthenaEngine(client, "chatlake", page_size=2, sleep=lambda s: None)
    result = engine.run("SELECT * FROM messages_per_day;")
    assert result.columns == [name for name, _ in COLUMNS]
    assert result.rows[0] == ("2026-11-20", 100, 0.5, False, datetime(2026, 11, 20, 9, 0, 0, 250000),
                              date(2026, 11, 20), Decimal("0.10"))
    assert [r[1] for r in result.rows] == [100, 101, 102, 103, 104, None] and result.rows[-1] == (None,) * 7
    assert recorder.names().count("GetQueryResults") == 4  # 7 rows (header + 6) in pages of 2
    assert recorder.started() == [{"QueryString": "SELECT * FROM messages_per_day",
                                   "QueryExecutionContext": {"Database": "chatlake"}}]


def test_cli_query_on_athena_with_workgroup_and_output_location(athena, monkeypatch, capsys):
    client, recorder = athena
    client.create_work_group(Name="analysts", Description="chatlake",
                             Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/wg/"}})
    monkeypatch.setenv("ATHENA_DATABASE", "chat_prod")
    monkeypatch.setenv("ATHENA_WORKGROUP", "analysts")
    monkeypatch.setenv("ATHENA_OUTPUT_URL", "s3://results/chatlake/")
    seed(ROWS[:2], COLUMNS)
    assert cli.main(["query", "messages_per_day", "--engine", "athena", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"day": "2026-11-20", "messages": 100, "share": 0.5, "is_edit": False,
         "first_at": "2026-11-20T09:00:00.250000Z", "d": "2026-11-20", "amount": 0.1},
        {"day": "2026-11-21", "messages": 101, "share": 1.5, "is_edit": True,
         "first_at": "2026-11-21T09:01:00.250000Z", "d": "2026-11-21", "amount": 1.1}]
    (started,) = recorder.started()
    assert started["QueryString"] == query.strip_statement(query.resolve_sql("messages_per_day"))
    assert started["QueryExecutionContext"] == {"Database": "chat_prod"}
    assert started["WorkGroup"] == "analysts"
    assert started["ResultConfiguration"] == {"OutputLocation": "s3://results/chatlake/"}
    assert recorder.names() == ["CreateWorkGroup", "StartQueryExecution", "GetQueryExecution", "GetQueryResults"]


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_cli_query_on_athena_other_formats(athena, capsys, fmt):
    seed(ROWS[:2], COLUMNS)
    assert cli.main(["query", "SELECT 1", "--engine", "athena", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        assert out.splitlines() == ["day,messages,share,is_edit,first_at,d,amount",
                                    "2026-11-20,100,0.5,false,2026-11-20T09:00:00.250000Z,2026-11-20,0.10",
                                    "2026-11-21,101,1.5,true,2026-11-21T09:01:00.250000Z,2026-11-21,1.10"]
    else:
        assert "messages" in out and "2026-11-21" in out and "2 rows" in out


def test_a_failed_query_exits_1_with_athenas_reason(athena, capsys):
    assert cli.main(["query", FAILING, "--engine", "athena"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: Athena: {REASON}\n" and captured.out == ""


def test_an_api_error_exits_1_with_its_message(athena, monkeypatch, capsys):
    monkeypatch.setenv("ATHENA_WORKGROUP", "no-such-workgroup")
    assert cli.main(["query", "SELECT 1", "--engine", "athena"]) == 1
    assert capsys.readouterr().err == "error: Athena: WorkGroup does not exist\n"


def test_polling_backs_off_exponentially_up_to_a_bound(athena):
    client, recorder = athena
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 4})
    sleeps: list[float] = []
    engine = query.AthenaEngine(client, "chatlake", first_delay=0.5, max_delay=2.0, sleep=sleeps.append)
    engine.run("SELECT 1")
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # QUEUED, then RUNNING, for 4 polls each
    assert recorder.names().count("GetQueryExecution") == len(sleeps) + 1


def test_a_query_past_its_time_limit_is_stopped(athena):
    client, recorder = athena
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    now = [0.0]
    engine = query.AthenaEngine(client, "chatlake", timeout=10, first_delay=1, max_delay=4,
                              sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    with pytest.raises(query.QueryError, match=r"did not finish within 10 s; it was cancelled"):
        engine.run("SELECT 1")
    assert recorder.names()[-1] == "StopQueryExecution" and now[0] <= 10
    (execution,) = athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions.values()
    assert execution.status == "CANCELLED"


def test_setup_athena_creates_database_tables_and_views_idempotently(athena, monkeypatch, capsys):
    client, recorder = athena
    monkeypatch.setenv("DATALAKE_URL", "s3://chatlake-lake/prod")
    for _ in range(2):  # a second run changes nothing and does not fail
        assert cli.main(["setup-athena"]) == 0
    out = capsys.readouterr().out
    want = query.athena_ddl("chatlake", "s3://chatlake-lake/prod")
    started = recorder.started()
    assert [s["QueryString"] for s in started] == [s.sql for s in want] * 2
    assert "QueryExecutionContext" not in started[0]  # the database does not exist yet
    assert all(s["QueryExecutionContext"] == {"Database": "chatlake"} for s in started[1:6])
    assert [s.sql.split(" (")[0].split(" AS")[0] for s in want] == [
        "CREATE DATABASE IF NOT EXISTS chatlake", "CREATE EXTERNAL TABLE IF NOT EXISTS chatlake.messages",
        "CREATE EXTERNAL TABLE IF NOT EXISTS chatlake.statuses", "CREATE EXTERNAL TABLE IF NOT EXISTS chatlake.rejects",
        "CREATE EXTERNAL TABLE IF NOT EXISTS chatlake.media",
        "CREATE OR REPLACE VIEW chatlake.messages_latest", "CREATE OR REPLACE VIEW chatlake.message_status_latest",
        "CREATE OR REPLACE VIEW chatlake.messages_media"]
    assert out.count("ok  table chatlake.messages\n") == 2 and "Athena is ready: database chatlake" in out
    databases = client.list_databases(CatalogName="AwsDataCatalog")["DatabaseList"]
    assert "chatlake" in [d["Name"] for d in databases]


def test_setup_athena_stops_at_the_first_failure(athena, monkeypatch):
    client, recorder = athena
    engine = query.athena_engine(load({}), client)
    statements = [query.Statement("database x", "CREATE DATABASE IF NOT EXISTS x"),
                  query.Statement("broken", FAILING), query.Statement("never", "CREATE DATABASE IF NOT EXISTS y")]
    echoed: list[str] = []
    with pytest.raises(query.QueryError, match="mismatched input"):
        query.setup_athena(engine, statements, echoed.append)
    assert echoed == ["ok  database x"]
    assert [s["QueryString"] for s in recorder.started()] == ["CREATE DATABASE IF NOT EXISTS x", FAILING]


def test_setup_athena_needs_an_s3_lake(athena, capsys):
    assert cli.main(["setup-athena"]) == 1
    assert "Athena reads the lake from S3, but DATALAKE_URL is './datalake'" in capsys.readouterr().err
    assert athena[1].calls == []


def test_no_aws_region_is_a_clear_error(monkeypatch, capsys):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    with mock_aws():
        assert cli.main(["query", "SELECT 1", "--engine", "athena"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Athena: You must specify a region.") and "AWS_REGION" in err
