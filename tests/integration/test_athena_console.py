"""`setup-athena` saves the analytics pack as Athena named queries ("Saved queries" in the console), updated in place.

moto 5.2 has no UpdateNamedQuery: the stub below (named) changes moto's stored query, as Athena would.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatlake import cli, query
from chatlake.deploy import athena_console

REGION = "us-east-1"


@pytest.fixture
def athena(monkeypatch: pytest.MonkeyPatch) -> Any:
    from moto.athena.responses import AthenaResponse

    def update_named_query(self: Any) -> str:  # the stub of the one missing call
        stored = self.athena_backend.named_queries[self._get_param("NamedQueryId")]
        stored.name, stored.query_string = self._get_param("Name"), self._get_param("QueryString")
        stored.description = self._get_param("Description")
        return "{}"

    monkeypatch.setattr(AthenaResponse, "update_named_query", update_named_query, raising=False)
    with mock_aws():
        client = boto3.client("athena", region_name=REGION)
        monkeypatch.setattr(query, "make_athena_client", lambda: client)
        monkeypatch.setenv("DATALAKE_URL", "s3://chatlake-lake")
        yield client


def saved(client: Any) -> dict[str, dict[str, Any]]:
    ids = client.list_named_queries(WorkGroup="primary")["NamedQueryIds"]
    queries = [client.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids]
    return {q["Name"]: q for q in queries}


def test_every_analytics_query_is_saved_once_and_updated_in_place(athena, capsys):
    assert cli.main(["setup-athena"]) == 0
    first = saved(athena)
    pack = query.analytics()
    assert sorted(first) == sorted(f.name for f in pack)
    for f in pack:
        q = first[f.name]
        assert (q["Database"], q["QueryString"]) == ("chatlake", f.text.strip() + "\n")
        assert q["Description"] == athena_console.MARK + f.description
    out = capsys.readouterr().out
    n = len(pack)
    assert f"Athena console: {n} saved queries in workgroup primary for database chatlake ({n} new" in out

    # someone edits one in the console; the next run puts the pack's text back, under the same id
    top = first["top_chats"]
    athena.update_named_query(NamedQueryId=top["NamedQueryId"], Name="top_chats", Description=top["Description"],
                              QueryString="SELECT 1")
    assert cli.main(["setup-athena"]) == 0
    second = saved(athena)
    assert len(athena.list_named_queries(WorkGroup="primary")["NamedQueryIds"]) == len(pack)
    assert second["top_chats"]["NamedQueryId"] == top["NamedQueryId"]
    assert second["top_chats"]["QueryString"] == top["QueryString"]
    assert "ok  update named query top_chats in place" in capsys.readouterr().out


def test_queries_of_others_and_of_other_databases_are_left_alone(athena):
    athena.create_named_query(Name="top_chats", Database="chatlake", QueryString="SELECT 42", WorkGroup="primary",
                              Description="an analyst's own version")
    athena.create_named_query(Name="top_chats", Database="chatlake_dev", QueryString="SELECT 7", WorkGroup="primary",
                              Description=athena_console.MARK + "the dev stage's")
    p = athena_console.sync(athena, "primary", "chatlake", query.analytics())
    assert len(p.create) == len(query.analytics()) and p.update == []
    texts = sorted(q["QueryString"] for q in (athena.get_named_query(NamedQueryId=i)["NamedQuery"]
                                              for i in athena.list_named_queries(WorkGroup="primary")["NamedQueryIds"]))
    assert "SELECT 42" in texts and "SELECT 7" in texts
