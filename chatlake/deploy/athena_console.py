"""The analytics pack as Athena **named queries**: "Saved queries" in the Athena query editor, where analysts work.

One named query per `sql/analytics` file, in the stage's workgroup, bound to the stage's database: its name is
the file's name, its description the file's leading comment, its SQL the file as it is (comment included, so the
editor shows what the query answers). A re-run updates the saved query in place (same id, so bookmarks and
links keep working) when the file changed, creates what is missing, and touches no query of anyone else: ours
are those whose database is ours and whose description starts with MARK.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

MARK = "chatlake analytics: "
MAX_DESCRIPTION = 1024  # Athena's limit for a named query's description
MAX_NAME = 128


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    database: str
    sql: str


def wanted(files: Sequence[Any], database: str) -> list[NamedQuery]:
    """The named queries the analytics files give (`files`: `SqlFile`s of the `sql/` folder)."""
    return [NamedQuery(f.name[:MAX_NAME], (MARK + f.description)[:MAX_DESCRIPTION], database, f.text.strip() + "\n")
            for f in files]


def existing(client: Any, workgroup: str, database: str) -> dict[str, dict[str, Any]]:
    """Our saved queries in the workgroup, by name (Athena's NamedQuery dicts)."""
    ids: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"WorkGroup": workgroup, "MaxResults": 50}
        if token:
            params["NextToken"] = token
        reply = client.list_named_queries(**params)
        ids += reply.get("NamedQueryIds", [])
        token = reply.get("NextToken")
        if not token:
            break
    found: dict[str, dict[str, Any]] = {}
    for query_id in ids:
        query = client.get_named_query(NamedQueryId=query_id)["NamedQuery"]
        if query.get("Database") == database and (query.get("Description") or "").startswith(MARK):
            found.setdefault(query["Name"], query)
    return found


@dataclass
class Plan:
    create: list[NamedQuery]
    update: list[tuple[str, NamedQuery]]  # (NamedQueryId, new content)
    unchanged: int

    @property
    def actions(self) -> list[str]:
        return ([f"save named query {q.name}" for q in self.create]
                + [f"update named query {q.name} in place" for _, q in self.update])


def plan(client: Any, workgroup: str, database: str, files: Sequence[Any]) -> Plan:
    have = existing(client, workgroup, database)
    create, update, same = [], [], 0
    for query in wanted(files, database):
        old = have.get(query.name)
        if old is None:
            create.append(query)
        elif (old.get("QueryString"), old.get("Description")) != (query.sql, query.description):
            update.append((old["NamedQueryId"], query))
        else:
            same += 1
    return Plan(create, update, same)


def apply(client: Any, workgroup: str, p: Plan) -> None:
    for query in p.create:
        client.create_named_query(Name=query.name, Description=query.description, Database=query.database,
                                  QueryString=query.sql, WorkGroup=workgroup)
    for query_id, query in p.update:
        client.update_named_query(NamedQueryId=query_id, Name=query.name, Description=query.description,
                                  QueryString=query.sql)


def delete_ours(client: Any, workgroup: str, database: str) -> int:
    """Remove our saved queries of `database` (destroy); returns how many."""
    have = existing(client, workgroup, database)
    for query in have.values():
        client.delete_named_query(NamedQueryId=query["NamedQueryId"])
    return len(have)


def sync(client: Any, workgroup: str, database: str, files: Sequence[Any], out: TextIO | None = None) -> Plan:
    """Save or update every analytics query; prints one line per change."""
    out = out or sys.stdout
    p = plan(client, workgroup, database, files)
    apply(client, workgroup, p)
    for action in p.actions:
        print(f"ok  {action}", file=out)
    print(f"Athena console: {len(files)} saved queries in workgroup {workgroup} for database {database} "
          f"({len(p.create)} new, {len(p.update)} updated): Athena > Query editor > Saved queries", file=out)
    return p


def command(settings: Any, client: Any, out: TextIO | None = None) -> int:
    """The `setup-athena` hook: after the DDL, save the analytics pack as named queries."""
    from chatlake import query

    engine = query.athena_engine(settings, client)
    sync(engine.client, engine.workgroup or "primary", engine.database, query.analytics(), out)
    return 0
