"""`chatlake VERB`: the command line (contract section 5).

Exit codes: 0 success, 1 the work failed (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from chalicelib import runtime
from chalicelib.settings import ConfigError
from chalicelib.storage import StorageError
from chatlake.query import QueryError
from chatlake.ui import safe_text


class UsageError(Exception):
    """Bad arguments the parser could not catch; exit code 2."""


#: The earliest day the ETL accepts. Deliveries are stamped in Unix time, so a lake holds nothing older, and the
#: days the ETL looks back from it stay within the dates Python can represent (year 1 would overflow).
EARLIEST_DAY = date(1970, 1, 1)
#: The most days `status` and `report` look back: ten years, beyond any retention, and a first day that exists.
MAX_DAYS = 3660


def parse_day(text: str) -> date:
    """An ETL day (`--date`, `--start`, `--end`): a date that has begun (UTC), from EARLIEST_DAY on. A day out of
    range is bad usage (exit 2) here rather than an OverflowError, or an empty run that looks like a success."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None
    today = datetime.now(UTC).date()
    if day > today:
        raise argparse.ArgumentTypeError(f"{day} is in the future; nothing can have been received on it yet "
                                         f"(today is {today}, UTC)")
    if day < EARLIEST_DAY:
        raise argparse.ArgumentTypeError(f"{day} is before {EARLIEST_DAY}; a lake holds nothing older")
    return day


def days_back(text: str) -> int:
    """`--days` of `status` and `report`: 1 to MAX_DAYS, checked while parsing so that a huge value is bad usage
    (exit 2) and not an OverflowError from the date arithmetic."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{days} is out of range: use 1 to {MAX_DAYS} (ten years)")
    return days


def cmd_etl(args: argparse.Namespace) -> int:
    from chalicelib import etl
    from chatlake import ui

    settings = runtime.settings()
    salt, window = settings.pii_salt(), settings.retry_window_days
    storage = runtime.storage()
    day = args.date or etl.yesterday()
    with ui.progress_bar(f"ETL {day}", unit="deliveries") as advance:
        result = etl.run_day(storage, day, salt, progress=advance, window=window)
    ui.print_table([result.as_dict()], etl.RESULT_COLUMNS, title=f"ETL {day} on {storage.url}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from chalicelib import etl
    from chatlake import ui

    if args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}")
    settings = runtime.settings()
    salt, window = settings.pii_salt(), settings.retry_window_days
    storage = runtime.storage()
    days = [args.start + timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    with ui.progress_bar("backfill", unit="days", total=len(days)) as advance:
        results = etl.run_days(storage, days, salt, on_day=lambda r: advance(days.index(r.day) + 1, len(days)),
                               window=window)
    rows = [r.as_dict() for r in results]
    total = {"day": "total", **{k: sum(r[k] for r in rows) for k in etl.RESULT_COLUMNS[1:]}}
    ui.print_table([*rows, total], etl.RESULT_COLUMNS, title=f"backfill {args.start} .. {args.end} on {storage.url}")
    for r in results:
        for warning in r.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    later = [d for d in (args.end + timedelta(days=i) for i in range(1, window + 1))
             if d < datetime.now(UTC).date() and etl.behind_reason(storage, d, salt, window=window)]
    if later:
        print(f"{len(later)} later day(s) depend on these through the {window}-day retry window and are now behind: "
              f"run chatlake backfill --start {later[0]} --end {later[-1]}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from chatlake import status

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    settings = runtime.settings()
    return status.command(runtime.storage(), args.days, settings.pii_salt(), settings.retry_window_days,
                          settings.etl_interval_minutes, fmt=args.format)


def cmd_refresh(args: argparse.Namespace) -> int:
    from chalicelib import intraday
    from chatlake import ui

    settings = runtime.settings()
    storage = runtime.storage()
    day = args.date or datetime.now(UTC).date()
    result = intraday.run_refresh(storage, day, settings.pii_salt(), window=settings.retry_window_days)
    ui.print_table([result.as_dict()], intraday.RESULT_COLUMNS, title=f"refresh {day} on {storage.url}")
    print(result.summary())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_set_telegram_webhook(args: argparse.Namespace) -> int:
    from chatlake.deploy import telegram_api

    return telegram_api.command(args.url, runtime.settings())


def _webhook_url(text: str) -> str:
    from chatlake.deploy.telegram_api import webhook_url

    return webhook_url(text)


def cmd_publish_layer(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import boto3

    from chatlake.deploy import layer

    with tempfile.TemporaryDirectory(prefix="chatlake-layer-") as workdir:
        return layer.command(args.stage, lambda: boto3.client("lambda"), Path(workdir))


def cmd_query(args: argparse.Namespace) -> int:
    from chatlake import query

    try:
        return query.query_command(args.sql, engine=args.engine, fmt=args.format)
    except query.SqlNotFound as e:
        raise UsageError(str(e)) from None


def cmd_ddl(args: argparse.Namespace) -> int:
    from chatlake import query

    return query.ddl_command(runtime.settings())


def cmd_setup_athena(args: argparse.Namespace) -> int:
    from chatlake import query

    return query.setup_athena_command(runtime.settings())


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatlake import query, report

    settings = runtime.settings()
    engine = query.make_engine(args.engine, settings)
    where = f"Athena database {settings.athena_database}" if args.engine == "athena" else settings.datalake_url
    html = report.build(engine, args.days, source=where)
    out = Path(args.out)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html.encode()) // 1024} KB, the last {args.days} days): open it in a browser")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chatlake.local import demo

    if args.deliveries < 1:
        raise UsageError("--deliveries must be at least 1")
    return demo.run(args.deliveries, args.port)


def cmd_serve(args: argparse.Namespace) -> int:
    from chatlake.local.stack import serve

    return serve(args.host, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatlake", description="chatlake command line")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("etl", help="run the daily ETL for one day (default: yesterday, UTC)")
    p.add_argument("--date", type=parse_day, help="the day, YYYY-MM-DD (default: yesterday, UTC)")
    p.set_defaults(func=cmd_etl)

    p = verbs.add_parser("backfill", help="run the ETL for each day of a range, oldest first")
    p.add_argument("--start", type=parse_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=parse_day, required=True, help="last day, YYYY-MM-DD (included)")
    p.set_defaults(func=cmd_backfill)

    p = verbs.add_parser("status", help="per day: raw deliveries, quarantined, rows, rejects, and days behind")
    p.add_argument("--days", type=days_back, default=7, help="how many days back, today included (default 7)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="output (default table); both exit 1 when a day is behind")
    p.set_defaults(func=cmd_status)

    p = verbs.add_parser("refresh", help="one intraday run: add a day's new raw deliveries (default today, UTC) "
                         "as new files; the next full run (etl) finalises the day")
    p.add_argument("--date", type=parse_day, help="the day, YYYY-MM-DD (default: today, UTC)")
    p.set_defaults(func=cmd_refresh)

    p = verbs.add_parser("set-telegram-webhook", help="register the webhook with Telegram (setWebhook with the "
                         "secret token), then show getWebhookInfo")
    p.add_argument("--url", type=_webhook_url, required=True,
                   help="the deployed /telegram route, e.g. https://abc123.execute-api.us-east-1.amazonaws.com/api/telegram")
    p.set_defaults(func=cmd_set_telegram_webhook)

    p = verbs.add_parser("publish-layer", help="publish the daily ETL's pyarrow layer (the pinned PyPI wheel) to "
                         "Lambda in your AWS region")
    p.add_argument("--stage", help="also make it the daily_etl layer of this stage in .chalice/config.json")
    p.set_defaults(func=cmd_publish_layer)

    p = verbs.add_parser("query", help="run Athena SQL (inline, a file, or a sql/analytics name) on DuckDB over "
                         "the lake (default) or on Athena")
    p.add_argument("sql", metavar="SQL_OR_FILE", help="the SQL, a .sql file, or an analytics name like top_chats")
    p.add_argument("--engine", choices=("duckdb", "athena"), default="duckdb", help="where it runs (default duckdb)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    p.set_defaults(func=cmd_query)

    p = verbs.add_parser("ddl", help="print the Athena DDL for every table and view (DATALAKE_URL must be s3://)")
    p.set_defaults(func=cmd_ddl)

    p = verbs.add_parser("setup-athena", help="create the Glue/Athena database, tables and views (idempotent)")
    p.set_defaults(func=cmd_setup_athena)

    p = verbs.add_parser("report", help="write one self-contained HTML file with charts of the chat traffic")
    p.add_argument("--days", type=days_back, default=30, help="how many days back, today included (default 30)")
    p.add_argument("--out", default="report.html", help="the file to write (default report.html)")
    p.add_argument("--engine", choices=["duckdb", "athena"], default="duckdb",
                   help="DuckDB over the lake (default) or Athena")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("demo", help="post signed synthetic deliveries to the local stack, run the ETL, show results")
    p.add_argument("--deliveries", type=int, default=500, help="how many deliveries to post (default 500)")
    p.add_argument("--port", type=int, default=8000, help="the local stack's port (started if none is running)")
    p.set_defaults(func=cmd_demo)

    p = verbs.add_parser("serve", help="run the local stack (what `make run` does)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        parser.error(str(e))  # exits 2
    except (ConfigError, StorageError, QueryError) as e:
        print(f"error: {safe_text(str(e))}", file=sys.stderr)  # an engine's message can quote chat text
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
