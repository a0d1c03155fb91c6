"""The `chatlake import` verb: read the file, pick the time zone, import with a progress bar, print the summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chalicelib import runtime
from chatlake import ui
from chatlake.imports import load

MAX_SHOWN = 20  # unreadable lines printed; all of them are in the lake (the export itself, and its record)


def run(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    """0 done, 1 the export could not be imported; `usage_error` is raised for what the person must change."""
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise usage_error(f"cannot read {args.file}: {e.strerror or e}") from None
    try:
        if args.tz:
            zone, zone_name = load.zone_named(args.tz), args.tz
        else:
            zone, zone_name = load.machine_zone()
        ctx = runtime.etl_context()
        label = f"import {path.name}" + (" (dry run)" if args.dry_run else "")
        with ui.progress_bar(ui.safe_text(label), unit="messages") as advance:
            if args.kind == "telegram-export":
                result = load.import_telegram(ctx.storage, data, zone=zone, zone_name=zone_name, me=args.me,
                                              pii_salt=ctx.pii_salt, dry_run=args.dry_run, progress=advance)
            else:
                result = load.import_whatsapp(ctx.storage, data, path.name, zone=zone, zone_name=zone_name,
                                              chat=args.chat, me=args.me, date_order=args.date_order,
                                              pii_salt=ctx.pii_salt, dry_run=args.dry_run, progress=advance)
    except load.NeedsOption as e:
        raise usage_error(str(e)) from None
    except load.ImportFailed as e:
        print(f"error: {ui.safe_text(str(e))}", file=sys.stderr)
        return 1
    summary = result.summary()
    where = "would write to" if args.dry_run else "into"
    if args.format == "json":
        ui.print_json({"lake": ctx.storage.url, "export_key": result.export_key, "dry_run": args.dry_run,
                       **summary, "date_order": result.date_order, "days_written": result.days,
                       "unreadable_lines": result.unreadable, "warnings": result.warnings})
    else:
        ui.print_table([summary], load.SUMMARY_COLUMNS, title=f"import {path.name} {where} {ctx.storage.url}")
        print(f"kept as {result.export_key}; times read in {result.zone}"
              + (f"; dates read as {result.date_order}" if result.date_order else "")
              + ("; nothing written (--dry-run)" if args.dry_run else ""))
    for line in result.unreadable[:MAX_SHOWN]:
        print(f"unreadable: {ui.safe_text(line)}", file=sys.stderr)
    if len(result.unreadable) > MAX_SHOWN:
        print(f"unreadable: … and {len(result.unreadable) - MAX_SHOWN} more (their line numbers are in "
              f"{result.export_key.rsplit('.', 1)[0]}.record.json)", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {ui.safe_text(warning)}", file=sys.stderr)
    return 0
