"""`python -m chalicelib VERB`: the command line (contract section 5).

Exit codes: 0 success, 1 the work failed (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from . import runtime
from .settings import ConfigError
from .storage import StorageError


class UsageError(Exception):
    """Bad arguments the parser could not catch; exit code 2."""


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def cmd_etl(args: argparse.Namespace) -> int:
    from . import etl, ui

    settings = runtime.settings()
    salt = settings.pii_salt()
    storage = runtime.storage()
    day = args.date or etl.yesterday()
    with ui.progress_bar(f"ETL {day}", unit="deliveries") as advance:
        result = etl.run_day(storage, day, salt, progress=advance)
    ui.print_table([result.as_dict()], ["day", "deliveries", "messages", "statuses", "rejects", "duplicates",
                                        "seconds"], title=f"ETL {day} on {storage.url}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from . import etl, ui

    if args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}")
    settings = runtime.settings()
    salt = settings.pii_salt()
    storage = runtime.storage()
    days = [args.start + timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    with ui.progress_bar("backfill", unit="days", total=len(days)) as advance:
        results = etl.run_days(storage, days, salt, on_day=lambda r: advance(days.index(r.day) + 1, len(days)))
    rows = [r.as_dict() for r in results]
    total = {"day": "total", **{k: sum(r[k] for r in rows) for k in ("deliveries", "messages", "statuses", "rejects",
                                                                      "duplicates", "seconds")}}
    ui.print_table([*rows, total], ["day", "deliveries", "messages", "statuses", "rejects", "duplicates", "seconds"],
                   title=f"backfill {args.start} .. {args.end} on {storage.url}")
    for r in results:
        for warning in r.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from . import status, ui

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    storage = runtime.storage()
    today = datetime.now(UTC).date()
    days = status.recent(storage, today, args.days)

    def state(d: status.DayStatus) -> str:
        if d.day == today:
            return "today: its ETL runs after midnight UTC"
        if d.behind:
            return "BEHIND: raw data newer than the output"
        if d.newest_raw is not None:
            return "ok"
        return "ok (no deliveries)" if any(n is not None for n in d.rows.values()) else "no data"

    rows = [{"day": str(d.day), **d.raw, "quarantined": d.quarantined, **d.rows, "state": state(d)} for d in days]
    ui.print_table(rows, ["day", "telegram", "whatsapp", "quarantined", "messages", "statuses", "rejects", "state"],
                   title=f"chatlake status: {storage.url} (raw deliveries, quarantined bodies, rows written)")
    behind = sorted(d.day for d in days if d.behind and d.day != today)
    if behind:
        print(f"{len(behind)} day(s) behind their raw data: run "
              f"python -m chalicelib backfill --start {behind[0]} --end {behind[-1]}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .localstack import serve

    return serve(args.host, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib", description="chatlake command line")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("etl", help="run the daily ETL for one day (default: yesterday, UTC)")
    p.add_argument("--date", type=parse_day, help="the day, YYYY-MM-DD (default: yesterday, UTC)")
    p.set_defaults(func=cmd_etl)

    p = verbs.add_parser("backfill", help="run the ETL for each day of a range, oldest first")
    p.add_argument("--start", type=parse_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=parse_day, required=True, help="last day, YYYY-MM-DD (included)")
    p.set_defaults(func=cmd_backfill)

    p = verbs.add_parser("status", help="per day: raw deliveries, quarantined, rows, rejects, and days behind")
    p.add_argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
    p.set_defaults(func=cmd_status)

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
    except (ConfigError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
