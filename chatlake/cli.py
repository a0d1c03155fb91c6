"""`chatlake VERB`: the command line (contract section 5).

Exit codes: 0 success, 1 the work failed (message on stderr), 2 bad usage (the verb's usage, then one line).
Importing this module stays light (no duckdb, sqlglot, boto3, pyarrow or rich): `chatlake --help` and a usage
error answer at once, and each verb imports what it needs.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from chalicelib import runtime
from chalicelib.settings import ConfigError, Settings
from chalicelib.storage import StorageError, require_existing
from chalicelib.values import digits
from chatlake import __version__
from chatlake.deploy.stage import DeployError
from chatlake.query import Engine, QueryError
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

    ctx = runtime.etl_context()
    day = args.date or etl.yesterday()
    with ui.progress_bar(f"ETL {day}", unit="deliveries") as advance:
        result = etl.run_day(ctx.storage, day, ctx.pii_salt, progress=advance, window=ctx.window)
    if args.format == "json":
        ui.print_json({"lake": ctx.storage.url, **result.as_dict()})
    else:
        ui.print_table([result.as_dict()], etl.RESULT_COLUMNS, title=f"ETL {day} on {ctx.storage.url}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from chalicelib import etl
    from chatlake import ui

    if args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}")
    ctx = runtime.etl_context()
    days = [args.start + timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    with ui.progress_bar("backfill", unit="days", total=len(days)) as advance:
        results = etl.run_days(ctx.storage, days, ctx.pii_salt,
                               on_day=lambda r: advance(days.index(r.day) + 1, len(days)), window=ctx.window)
    rows = [r.as_dict() for r in results]
    total = {"day": "total", **{k: sum(r[k] for r in rows) for k in etl.RESULT_COLUMNS[1:]}}
    later = [d for d in (args.end + timedelta(days=i) for i in range(1, ctx.window + 1))
             if d < datetime.now(UTC).date() and etl.behind_reason(ctx.storage, d, ctx.pii_salt, window=ctx.window)]
    if args.format == "json":
        ui.print_json({"lake": ctx.storage.url, "start": str(args.start), "end": str(args.end), "days": rows,
                       "total": {k: total[k] for k in etl.RESULT_COLUMNS[1:]}, "behind_after": [str(d) for d in later]})
    else:
        ui.print_table([*rows, total], etl.RESULT_COLUMNS,
                       title=f"backfill {args.start} .. {args.end} on {ctx.storage.url}")
    for r in results:
        for warning in r.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if later:
        print(f"{len(later)} later day(s) depend on these through the {ctx.window}-day retry window and are now "
              f"behind: run chatlake backfill --start {later[0]} --end {later[-1]}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from chatlake import status

    ctx = runtime.etl_context()
    return status.command(ctx.storage, args.days, ctx.pii_salt, ctx.window, runtime.settings().etl_interval_minutes,
                          fmt=args.format)


def cmd_refresh(args: argparse.Namespace) -> int:
    from chalicelib import intraday
    from chatlake import ui

    ctx = runtime.etl_context()
    day = args.date or datetime.now(UTC).date()
    # by hand, the day is listed (on a folder lake too): what `status` calls waiting is found, however it came
    result = intraday.run_refresh(ctx.storage, day, ctx.pii_salt, window=ctx.window, journal=False)
    ui.print_table([result.as_dict()], intraday.RESULT_COLUMNS, title=f"refresh {day} on {ctx.storage.url}")
    print(result.summary())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_media(args: argparse.Namespace) -> int:
    from chatlake import media_fetch

    return media_fetch.command(args.date, args.format)


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
    """Run Athena SQL on DuckDB over the lake (default) or on Athena, and print the result."""
    from chatlake import query

    try:
        sql = query.resolve_sql(args.sql)
    except query.SqlNotFound as e:
        raise UsageError(str(e)) from None
    settings = runtime.settings()
    engine = _engine(args.engine, settings)
    query.write_result(engine.run(sql), args.format, sys.stdout)
    return 0


def cmd_ddl(args: argparse.Namespace) -> int:
    """Print every statement `setup-athena` runs, in order."""
    from chatlake import query

    settings = runtime.settings()
    statements = query.athena_ddl(query.check_database(settings.athena_database),
                                  query.athena_location(settings.datalake_url))
    sys.stdout.write(query.format_ddl(statements))
    return 0


def cmd_setup_athena(args: argparse.Namespace) -> int:
    """Create (or bring up to date) the database, tables and views in AWS."""
    from chatlake import query
    from chatlake.deploy import athena_console

    settings = runtime.settings()
    statements = query.athena_ddl(query.check_database(settings.athena_database),
                                  query.athena_location(settings.datalake_url))
    engine = query.athena_engine(settings, query.make_athena_client())
    query.setup_athena(engine, statements)
    print(f"Athena is ready: database {engine.database}, tables {', '.join(query.TABLES)}, "
          f"views {', '.join(query.VIEWS)}")
    return athena_console.command(settings, engine.client)


def _engine(name: str, settings: Settings) -> Engine:
    """The engine `query` and `report` run Athena SQL on: DuckDB over the lake (default), or Athena."""
    from chatlake import query

    if name == "athena":
        return query.athena_engine(settings, query.make_athena_client())
    return query.duckdb_engine(runtime.storage(settings.datalake_url))


def _aws_clients(region: str | None) -> tuple:
    """Every AWS client of deploy/destroy/doctor, from one boto3 session (region: the stage's, else the profile's)."""
    import boto3

    from chatlake.deploy.plan import Clients

    session = boto3.Session(region_name=region) if region else boto3.Session()
    return Clients.from_session(session), session.region_name


def cmd_deploy(args: argparse.Namespace) -> int:
    from chatlake.deploy import command
    from chatlake.deploy.plan import Options

    options = Options(args.rate_limit, args.burst_limit, args.reserved_concurrency, args.from_env)
    return command.deploy(args.stage, _aws_clients, runtime.settings(), region=args.region, bucket=args.bucket,
                          dry_run=args.dry_run, options=options)


def cmd_destroy(args: argparse.Namespace) -> int:
    from chatlake.deploy import command

    return command.destroy(args.stage, _aws_clients, runtime.settings(), keep_data=args.keep_data,
                           delete_bucket=args.delete_bucket, dry_run=args.dry_run,
                           confirm=input if sys.stdin.isatty() else None)


def cmd_doctor(args: argparse.Namespace) -> int:
    from chatlake.deploy import doctor

    stages = [args.stage] if args.stage else doctor.deployed_stages()
    if not stages:
        raise UsageError("no stage deployed from this checkout: chatlake deploy --stage dev (or doctor --stage S)")
    return max(doctor.doctor(s, _aws_clients, runtime.settings()) for s in stages)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatlake import report

    settings = runtime.settings()
    engine = _engine(args.engine, settings)
    where = f"Athena database {settings.athena_database}" if args.engine == "athena" else settings.datalake_url
    html = report.build(engine, args.days, source=where)
    out = Path(args.out)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html.encode()) // 1024} KB, the last {report.charts.counted(args.days, 'day')}): "
          "open it in a browser")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from chatlake.imports import command

    return command.run(args, UsageError)


def cmd_demo(args: argparse.Namespace) -> int:
    from chatlake.local import demo

    if args.deliveries < 1:
        raise UsageError("--deliveries must be at least 1")
    return demo.run(args.deliveries, args.port)


def cmd_ingest_sns(args: argparse.Namespace) -> int:
    from chatlake import ingest_sns, ui

    storage = runtime.storage()
    results = ingest_sns.ingest(args.files, storage)
    ui.print_table([vars(r) for r in results], ingest_sns.COLUMNS,
                   title=f"AWS End User Messaging Social events into {storage.url}")
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"error: {safe_text(r.file)}: {safe_text(r.error or '')}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(results)} file(s) stored nothing: give SNS notifications (a Lambda event, an "
              "HTTPS/SQS delivery's body, SQS messages) or one bare event per file", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from chatlake.local.stack import serve

    return serve(args.host, args.port)


def cmd_forget(args: argparse.Namespace) -> int:
    from chatlake import forget

    kind = next(k for k in forget.KINDS if getattr(args, k.replace("-", "_")) is not None)
    try:
        subject = forget.Subject.parse(kind, getattr(args, kind.replace("-", "_")))
        ctx = runtime.etl_context()
        return forget.command(ctx.storage, subject, ctx.pii_salt, ctx.window, dry_run=args.dry_run, yes=args.yes,
                              confirm=input if sys.stdin.isatty() else None)
    except forget.ForgetError as e:
        raise UsageError(str(e)) from None


def cmd_prune(args: argparse.Namespace) -> int:
    from chatlake import retention, ui

    settings = runtime.settings()
    raw_days, table_days = settings.raw_retention_days, settings.table_retention_days
    storage = runtime.storage(settings.datalake_url)
    if args.lifecycle:
        from chalicelib.storage import S3Storage

        if not isinstance(storage, S3Storage):
            raise UsageError("--lifecycle needs an s3:// DATALAKE_URL (a folder lake is pruned by chatlake prune)")
        rules = retention.apply_lifecycle(storage.client, storage.bucket, storage.prefix, raw_days, table_days)
        ui.print_table([{"rule": r.get("ID"), "prefix": (r.get("Filter") or {}).get("Prefix"),
                         "days": (r.get("Expiration") or {}).get("Days")} for r in rules], ["rule", "prefix", "days"],
                       title=f"lifecycle of s3://{storage.bucket}")
        return 0
    if raw_days is None and table_days is None:
        print("RAW_RETENTION_DAYS and TABLE_RETENTION_DAYS are unset: everything is kept")
        return 0
    p = retention.plan(storage, raw_days, table_days)
    ui.print_table([{"layer": k, "objects": v} for k, v in sorted(p.counts.items())] or [{"layer": "none",
                                                                                         "objects": 0}],
                   ["layer", "objects"], title=f"prune {storage.url}: raw older than {raw_days or 'forever'} days, "
                   f"tables older than {table_days or 'forever'} days (before {p.today}, UTC)")
    if args.dry_run:
        print("dry run: nothing was deleted")
        return 0
    print(f"deleted {retention.prune(storage, p)} objects")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse that answers a mistyped choice (a verb, `--engine`, `--format`) with the closest one."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{did_you_mean(str(value), action.choices)}")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """" (did you mean top_chats?)", or the choices when none is close."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (choose from {', '.join(choices)})"


def analytics_names() -> list[str]:
    """The names of sql/analytics/*.sql (what `chatlake query NAME` runs)."""
    from chatlake import query

    return [f.name for f in query.analytics()]


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sql_or_file(text: str) -> str:
    """`query`'s argument. A single bare word can only be an analytics name (no statement is one word), so an
    unknown one is bad usage with the closest name, not an SQL syntax error from the engine."""
    if _BARE_NAME.fullmatch(text.strip()):
        names = analytics_names()
        if text.strip() not in names:
            raise argparse.ArgumentTypeError(f"no analytics query named {text.strip()!r}"
                                             f"{did_you_mean(text.strip(), names)}")
    return text


def _analytics_epilog() -> str:
    from chatlake import query

    def headline(description: str) -> str:  # "Top chats: the 20 conversations ..." -> "Top chats"
        return textwrap.shorten(description.split(": ", 1)[0], 52, placeholder=" ...")

    lines = [f"  {f.name:<25} {headline(f.description)}" for f in query.analytics()]
    return "the analytics pack (sql/analytics), by name:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chatlake", description="chatlake: WhatsApp and Telegram webhooks into a data lake, the "
                    "daily ETL to Parquet, and SQL over it.",
                    epilog="`chatlake VERB --help` shows a verb's options. Exit codes: 0 success, 1 the work failed, "
                    "2 bad usage.")
    parser.add_argument("--version", action="version", version=f"chatlake {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, summary: str, func: object, lake: str | None = None, **kwargs: object) -> Parser:
        """A verb: `summary` is its line in `chatlake --help` and the description of `chatlake VERB --help`.
        `lake`: "read" (a folder lake must exist), "open" (DATALAKE_URL must be well formed) or None."""
        p = verbs.add_parser(name, help=summary, description=textwrap.fill(summary, 79), **kwargs)
        p.set_defaults(func=func, lake=lake, verb_parser=p)
        return p

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=("table", "json"), default="table",
                       help="table (default; plain text when not a terminal) or one JSON document, for cron jobs "
                            "and monitoring")

    p = verb("etl", "run the daily ETL for one day (default: yesterday, UTC)", cmd_etl)
    p.add_argument("--date", type=parse_day, help="the day, YYYY-MM-DD (default: yesterday, UTC)")
    output(p)

    p = verb("backfill", "run the ETL for each day of a range, oldest first", cmd_backfill)
    p.add_argument("--start", type=parse_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=parse_day, required=True, help="last day, YYYY-MM-DD (included)")
    output(p)

    p = verb("status", "per day: raw deliveries, quarantined, rows, rejects, and days behind (exit 1 if any)",
             cmd_status, lake="read")
    p.add_argument("--days", type=days_back, default=7, help="how many days back, today included (default 7)")
    output(p)

    p = verb("refresh", "one intraday run: add a day's new raw deliveries (default today, UTC) as new files; the "
             "next full run (etl) finalises the day", cmd_refresh)
    p.add_argument("--date", type=parse_day, help="the day, YYYY-MM-DD (default: today, UTC)")

    p = verb("media", "capture media (photos, voice notes, documents, videos) into the lake now", cmd_media,
             lake="open")
    p.add_argument("action", choices=("fetch",), help="fetch: download what is not stored yet (pending, disabled, "
                   "retryable), at once")
    p.add_argument("--date", type=parse_day, help="only this day, YYYY-MM-DD (default: today and the 7 days before, "
                   "the window WhatsApp keeps media ids)")
    output(p)

    p = verb("set-telegram-webhook", "register the webhook with Telegram (setWebhook with the secret token), then "
             "show getWebhookInfo", cmd_set_telegram_webhook)
    p.add_argument("--url", type=_webhook_url, required=True,
                   help="the deployed /telegram route, e.g. https://abc123.execute-api.us-east-1.amazonaws.com/api/telegram")

    p = verb("publish-layer", "publish the daily ETL's pyarrow layer (the pinned PyPI wheel) to Lambda in your AWS "
             "region", cmd_publish_layer)
    p.add_argument("--stage", help="also make it the daily_etl layer of this stage in .chalice/config.json")

    p = verb("query", "run Athena SQL (inline, a file, or a sql/analytics name) on DuckDB over the lake (default) "
             "or on Athena", cmd_query, lake="read", epilog=_analytics_epilog(),
             formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sql", type=sql_or_file, metavar="SQL_OR_FILE",
                   help="the SQL, a .sql file, or an analytics name like top_chats (listed below)")
    p.add_argument("--engine", choices=("duckdb", "athena"), default="duckdb", help="where it runs (default duckdb)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")

    verb("ddl", "print the Athena DDL for every table and view (DATALAKE_URL must be s3://)", cmd_ddl, lake="open")
    verb("setup-athena", "create the Glue/Athena database, tables and views (idempotent)", cmd_setup_athena,
         lake="open")

    p = verb("deploy", "deploy a stage to AWS in one idempotent, resumable run (plan first with --dry-run)",
             cmd_deploy)
    p.add_argument("--stage", choices=("dev", "prod"), required=True, help="the stage (dev or prod)")
    p.add_argument("--bucket", help="the lake's S3 bucket (default chatlake-STAGE-ACCOUNT-REGION; created if missing)")
    p.add_argument("--region", help="AWS region (default: your profile's or AWS_DEFAULT_REGION)")
    p.add_argument("--dry-run", action="store_true", help="print what exists and what would change; touch nothing")
    p.add_argument("--from-env", action="store_true", help="read WHATSAPP_APP_SECRET and TELEGRAM_BOT_TOKEN from "
                   "the environment instead of asking (CI)")
    p.add_argument("--rate-limit", type=float, default=50.0, help="API Gateway requests/s (default 50)")
    p.add_argument("--burst-limit", type=int, default=100, help="API Gateway burst (default 100)")
    p.add_argument("--reserved-concurrency", type=int, default=20,
                   help="most webhook invocations at once (default 20; 0: none)")

    p = verb("destroy", "remove what deploy made; the bucket only when you confirm", cmd_destroy)
    p.add_argument("--stage", choices=("dev", "prod"), required=True, help="the stage (dev or prod)")
    p.add_argument("--keep-data", action="store_true", help="keep the bucket (and the PII salt parameter)")
    p.add_argument("--delete-bucket", metavar="NAME", help="confirm deleting the bucket NAME without a prompt")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; touch nothing")

    p = verb("doctor", "check a deployed stage and say how to fix what is wrong", cmd_doctor)
    p.add_argument("--stage", choices=("dev", "prod"), help="default: every stage deployed from this checkout")

    p = verb("report", "write one self-contained HTML file with charts of the chat traffic", cmd_report, lake="read")
    p.add_argument("--days", type=days_back, default=30, help="how many days back, today included (default 30)")
    p.add_argument("--out", default="report.html", help="the file to write (default report.html)")
    p.add_argument("--engine", choices=["duckdb", "athena"], default="duckdb",
                   help="DuckDB over the lake (default) or Athena")

    p = verb("import", "import chat history exports (Telegram Desktop JSON, WhatsApp \"Export chat\") into the "
             "messages table, by the day each message was sent", cmd_import, lake="open")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND", help="which export")
    for kind, summary in (("telegram-export", "Telegram Desktop's result.json (one chat or a full export)"),
                          ("whatsapp-export", "WhatsApp's \"Export chat\" .txt or .zip")):
        k = kinds.add_parser(kind, help=summary, description=summary)
        k.set_defaults(verb_parser=k)
        k.add_argument("file", metavar="FILE", help="the export file")
        k.add_argument("--me", metavar="NAME", help="your name as the export shows it: your messages are `out`")
        k.add_argument("--tz", metavar="ZONE", help="the exporting device's time zone, e.g. Europe/Madrid "
                       "(default: this machine's)")
        if kind == "whatsapp-export":
            k.add_argument("--date-order", choices=("dmy", "mdy"), help="how the phone writes dates, when the "
                           "file cannot tell (every date reads both ways)")
            k.add_argument("--chat", metavar="NAME", help="the chat's name (default: from the file name)")
        k.add_argument("--dry-run", action="store_true", help="parse and count; write nothing")
        output(k)

    p = verb("demo", "post signed synthetic deliveries to the local stack, run the ETL, show results", cmd_demo,
             lake="open")
    p.add_argument("--deliveries", type=int, default=500, help="how many deliveries to post (default 500)")
    p.add_argument("--port", type=port_number, default=8000,
                   help="the local stack's port (default 8000; started there if none is running)")

    p = verb("ingest-sns", "store AWS End User Messaging Social events given as SNS notifications (a Lambda event, "
             "an HTTPS/SQS delivery, SQS messages) or as bare messages, as the SNS function does", cmd_ingest_sns,
             lake="open")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a JSON file of notifications, or one event")

    p = verb("forget", "erase a person (or a private chat) from every layer of the lake, with an audit record",
             cmd_forget, lake="read")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", metavar="N", help="a WhatsApp phone number (+15551234567)")
    who.add_argument("--telegram-user", metavar="ID", help="a Telegram user id")
    who.add_argument("--wa-id", metavar="ID", help="a WhatsApp wa_id or BSUID")
    who.add_argument("--chat", metavar="ID", help="a private chat as a whole (Telegram chat id or WhatsApp wa_id)")
    p.add_argument("--dry-run", action="store_true", help="print what would be erased; change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")

    p = verb("prune", "delete what is older than RAW_RETENTION_DAYS / TABLE_RETENTION_DAYS (unset: keep forever)",
             cmd_prune, lake="read")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    p.add_argument("--lifecycle", action="store_true", help="instead, put the same retention on the S3 bucket as "
                   "lifecycle rules (s3:// lakes)")

    p = verb("serve", "run the local stack: webhooks, the lake, the daily ETL (what `make run` does)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=port_number, default=8000, help="the port to listen on (default 8000)")
    return parser


def port_number(text: str) -> int:
    """`--port`: 1 to 65535, checked while parsing (bad usage, exit 2)."""
    port = digits(text, 5)
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1 to 65535")
    return port


def check_lake(args: argparse.Namespace) -> None:
    """DATALAKE_URL, checked before the verb runs: well formed for every verb that opens the lake, and, for one
    that only reads it on this machine, an existing folder (an empty lake would hide a wrong DATALAKE_URL)."""
    if args.lake is None or getattr(args, "engine", "duckdb") == "athena":
        return
    storage = runtime.storage()
    if args.lake == "read":
        require_existing(storage)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_lake(args)
        return args.func(args)
    except UsageError as e:
        args.verb_parser.error(str(e))  # the verb's usage, then the message; exits 2
    except (ConfigError, StorageError, QueryError, DeployError) as e:
        print(f"error: {safe_text(str(e))}", file=sys.stderr)  # an engine's message can quote chat text
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
