"""`query` on DuckDB over a lake of 1M message rows (30 days): our CLI against DuckDB running the same SQL.

Ours: `chatlake query sql/analytics/<q>.sql --format csv`, a whole process (settings, lake views,
the Athena SQL translated by sqlglot, the query, CSV out). Baseline: a process that imports duckdb, makes a plain
hive-partitioned view per table and runs the SQL sqlglot gave us, writing the same CSV. The ratio is what the
CLI costs on top of DuckDB itself. The CLI caches translations (importing sqlglot costs more than the query):
the timed runs find them cached, as a repeated query does; the first, uncached run is printed for information.

The lake is written straight as Parquet in the ETL's schema (schema.arrow_schema, zstd, one file per day and
table, sorted like the ETL): generating and parsing 1M deliveries would take minutes and measure the ETL.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.common import PROJECT_DIR, report

DAYS = 30
ROWS = 1_000_000
FIRST_DAY = date(2026, 10, 1)
QUERIES = ("messages_per_day", "busiest_hours", "top_chats")
GOAL = 1.3
BASELINE = """
import csv, sys, duckdb
root, sql_file = sys.argv[1:]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
for table in ("messages", "statuses", "rejects"):
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{root}/enriched/{table}/dt=*/*.parquet', "
                "hive_partitioning = true, hive_types = {'dt': 'VARCHAR'})")
cursor = con.execute(open(sql_file).read())
writer = csv.writer(sys.stdout, lineterminator="\\n")
writer.writerow([d[0] for d in cursor.description])
writer.writerows(cursor.fetchall())
"""

# One day of rows, from DuckDB's range(): deterministic (hash of the row number), shaped like the ETL's output:
# both sources, Telegram private chats, groups and channels, WhatsApp contacts with echoes, media with ids and
# MIME types, replies, edits of earlier messages, realistic type mix and a daytime peak in the hours.
MESSAGES = """
WITH base AS (
    SELECT i, (hash(i, {seed}) >> 1)::BIGINT AS h, (hash(i, {seed} + 1) >> 1)::BIGINT AS g,
           CASE WHEN hash(i, {seed} + 2) % 100 < 55 THEN 'telegram' ELSE 'whatsapp' END AS source
    FROM range({n}) AS t(i)
), shaped AS (
    SELECT *,
        (h % 1000) < 30 AND i > 0 AS is_edit,
        [0,1,2,3,4,5,6,6,7,7,7,8,8,8,8,9,9,9,9,9,10,10,10,10,10,11,11,11,11,12,12,12,12,13,13,13,13,14,14,14,14,
         15,15,15,15,16,16,16,17,17,17,18,18,19,19,20,20,21,22,23][1 + (g % 60)::INT] * 3600 + (h % 3600) AS second,
        CASE source WHEN 'telegram' THEN
            ['text','text','text','text','text','text','text','text','text','text','text','text','text','photo',
             'photo','voice','sticker','video','document','animation','audio','video_note','location','service',
             'poll','contact','venue','dice'][1 + (g % 28)::INT]
        ELSE
            ['text','text','text','text','text','text','text','text','text','text','text','image','image','audio',
             'audio','reaction','reaction','video','document','sticker','interactive','button','location',
             'contacts','order','unsupported'][1 + (g % 26)::INT]
        END AS message_type,
        CASE WHEN source = 'whatsapp' AND (h % 100) < 4 THEN 'out' ELSE 'in' END AS direction,
        g % 20 AS chat_kind,
        (h // 7) % 6000 AS person
    FROM base
)
SELECT
    source,
    CASE WHEN source = 'telegram' THEN CAST(person + 100000000 AS VARCHAR) || ':' || CAST(i - is_edit::INT AS VARCHAR)
         ELSE 'wamid.HBgL' || md5(CAST(i - is_edit::INT AS VARCHAR) || '{day}') END AS message_id,
    TIMESTAMPTZ '{day} 00:00:00+00' + to_seconds(second) AS sent_at,
    CASE WHEN is_edit THEN TIMESTAMPTZ '{day} 00:00:00+00' + to_seconds(second + 60 + h % 600) END AS edited_at,
    CASE WHEN source = 'whatsapp' THEN CAST(34600000000 + person AS VARCHAR)
         WHEN chat_kind < 14 THEN CAST(100000000 + person AS VARCHAR)
         ELSE '-100' || CAST(1500000000 + chat_kind * 7919 AS VARCHAR) END AS chat_id,
    CASE WHEN source = 'whatsapp' OR chat_kind < 14 THEN 'private' WHEN chat_kind < 17 THEN 'group'
         WHEN chat_kind < 19 THEN 'supergroup' ELSE 'channel' END AS chat_type,
    CASE WHEN source = 'telegram' AND chat_kind >= 14 THEN
         ['Support Team', 'Clientes VIP', 'Lieferanten', 'Beta testers', 'Équipe Paris', 'Shop News'][chat_kind - 13]
         END AS chat_title,
    CASE WHEN direction = 'out' THEN '15550783881' WHEN source = 'whatsapp' THEN CAST(34600000000 + person AS VARCHAR)
         ELSE CAST(100000000 + person AS VARCHAR) END AS sender_id,
    ['Zoë García', 'José Müller', 'Ana Smith', 'Wei Ng', 'Priya Silva', 'Kwame Okafor'][1 + (person % 6)::INT]
        AS sender_name,
    CASE WHEN source = 'telegram' AND person % 10 < 7 THEN 'user' || CAST(person AS VARCHAR) END AS sender_username,
    CASE WHEN source = 'whatsapp' THEN CAST(34600000000 + person AS VARCHAR) END AS sender_phone,
    message_type,
    CASE WHEN message_type IN ('text', 'reaction', 'interactive', 'button', 'order')
         THEN ['Hi! Is the shop open today?', 'Where is my order?', 'Thanks a lot 🙏', 'ok 👍', 'Preis für 2 Stück?',
               'Can I change my delivery address?'][1 + (h % 6)::INT] END AS text,
    CASE WHEN message_type IN ('photo', 'image', 'voice', 'audio', 'video', 'document', 'sticker', 'animation',
                               'video_note') THEN md5(CAST(h AS VARCHAR)) END AS media_id,
    CASE message_type WHEN 'image' THEN 'image/jpeg' WHEN 'audio' THEN 'audio/ogg; codecs=opus'
         WHEN 'voice' THEN 'audio/ogg' WHEN 'video' THEN 'video/mp4' WHEN 'document' THEN 'application/pdf' END
        AS media_mime_type,
    CASE WHEN h % 100 < 5 AND i > 10 THEN
         CASE WHEN source = 'telegram' THEN CAST(person + 100000000 AS VARCHAR) || ':' || CAST(i - 10 AS VARCHAR)
              ELSE 'wamid.HBgL' || md5(CAST(i - 10 AS VARCHAR) || '{day}') END END AS reply_to_message_id,
    is_edit,
    direction,
    CASE WHEN source = 'whatsapp' THEN '106540352242922' END AS account_id,
    'raw/source=' || source || '/dt={day}/' || sha256(CAST(i AS VARCHAR) || '{day}') || '.json' AS raw_key
FROM shaped
"""
STATUSES = """
SELECT
    'wamid.HBgM' || md5(CAST(i // 3 AS VARCHAR) || '{day}') AS message_id,
    CASE WHEN (i // 3) % 50 = 0 AND i % 3 = 1 THEN 'failed' ELSE ['sent', 'delivered', 'read'][1 + i % 3] END AS status,
    TIMESTAMPTZ '{day} 00:00:00+00' + to_seconds((i // 3) % 86000 + (i % 3) * 90) AS status_at,
    CAST(34600000000 + hash(i // 3, {seed}) % 6000 AS VARCHAR) AS recipient_id,
    CASE WHEN (i // 3) % 50 = 0 AND i % 3 = 1 THEN 131047 END AS error_code,
    CASE WHEN (i // 3) % 50 = 0 AND i % 3 = 1 THEN 'Re-engagement message' END AS error_title,
    'service' AS pricing_category,
    '106540352242922' AS account_id,
    'raw/source=whatsapp/dt={day}/' || sha256(CAST(i AS VARCHAR) || 'status{day}') || '.json' AS raw_key
FROM range({n}) AS t(i)
"""
REJECTS = """
SELECT 'telegram' AS source, 'raw/source=telegram/dt={day}/' || sha256(CAST(i AS VARCHAR) || '{day}') || '.json'
    AS raw_key, 'the update has no update_id: it is not a Telegram Bot API update' AS reason
FROM range(3) AS t(i)
"""


def make_lake(root: Path, rows: int = ROWS, days: int = DAYS) -> None:
    """`rows` message rows over `days` day partitions (and a tenth as many statuses), as the ETL lays them out."""
    import duckdb
    import pyarrow.parquet as pq

    from chalicelib import etl, layout
    from chalicelib.schema import arrow_schema

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        n = rows // days + (1 if d < rows % days else 0)
        for table, template, count in (("messages", MESSAGES, n), ("statuses", STATUSES, n // 10),
                                       ("rejects", REJECTS, 3)):
            data = con.sql(template.format(seed=d * 10, n=count, day=day)).to_arrow_table()
            data = data.cast(arrow_schema(table)).sort_by([(k, "ascending") for k in etl.SORT_KEYS[table]])
            folder = root / layout.enriched_prefix(table, day)
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, folder / etl.PART_NAME, compression="zstd", use_dictionary=True)
    print(f"  lake of {rows:,} message rows over {days} days written in {time.perf_counter() - started:.1f} s "
          f"({root})", flush=True)


def measured(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process, its output discarded (checked for success)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def same_output(root: Path, name: str, transpiled: Path, env: dict[str, str]) -> None:
    """Both sides must print the same rows (or the comparison is meaningless)."""
    py = sys.executable
    ours = subprocess.run([py, "-m", "chatlake", "query", f"sql/analytics/{name}.sql", "--format", "csv"],
                          env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=True).stdout
    theirs = subprocess.run([py, "-c", BASELINE, str(root), str(transpiled)], env=env, cwd=PROJECT_DIR,
                            capture_output=True, text=True, check=True).stdout
    if len(ours.splitlines()) != len(theirs.splitlines()) or ours.splitlines()[0] != theirs.splitlines()[0]:
        raise RuntimeError(f"{name}: the CLI and DuckDB disagree:\n{ours[:500]}\n---\n{theirs[:500]}")


def run(rounds: int = 5) -> bool:
    from chatlake import query

    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-sql-"))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR), "DATALAKE_URL": str(work / "lake"),
           "XDG_CACHE_HOME": str(work / "cache")}  # the translation cache, warmed by the first run below
    py = sys.executable
    try:
        make_lake(work / "lake")
        transpiled = {}
        for name in QUERIES:
            transpiled[name] = work / f"{name}.duckdb.sql"
            transpiled[name].write_text(query.to_duckdb(query.resolve_sql(name)))
            same_output(work / "lake", name, transpiled[name], env)
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in QUERIES}
        for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
            for name in QUERIES:
                times[name][1].append(measured([py, "-c", BASELINE, str(work / "lake"), str(transpiled[name])], env))
                times[name][0].append(measured([py, "-m", "chatlake", "query", f"sql/analytics/{name}.sql",
                                                "--format", "csv"], env))
        cold = statistics.median(
            measured([py, "-m", "chatlake", "query", f"sql/analytics/{QUERIES[0]}.sql", "--format", "csv"],
                     {**env, "XDG_CACHE_HOME": str(work / f"cold{i}")}) for i in range(3))
        print(f"  (for information: {QUERIES[0]} with SQL never translated before, sqlglot imported and run: "
              f"{cold * 1e3:.0f} ms)", flush=True)
        ok = True
        for name in QUERIES:
            ok &= report(f"query {name} on 1M rows / {DAYS} days (whole process)",
                         statistics.median(times[name][0]), statistics.median(times[name][1]), GOAL,
                         unit="ms", what="DuckDB")
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
