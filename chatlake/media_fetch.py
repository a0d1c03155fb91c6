"""`chatlake media fetch [--date D]`: media capture by hand, at once (backoff waits skipped), with a progress bar.

It runs whatever MEDIA_CAPTURE says (that setting only switches the schedule): with capture off, rows keep their
`media_id`, and this command still gets the bytes while the platforms keep them (WhatsApp: 7 days).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

from chalicelib import media_capture, runtime
from chalicelib.settings import ConfigError


def command(day: date | None, output: str = "table") -> int:
    from chatlake import ui

    capture = runtime.media_capture()
    if not capture.fetchers:
        raise ConfigError("no media token is set: set WHATSAPP_ACCESS_TOKEN and/or TELEGRAM_BOT_TOKEN (or their "
                          "_PARAM), see the README's media section")
    today = datetime.now(UTC).date()
    days = [day] if day else None
    results: list[media_capture.DayCapture] = []
    with ui.progress_bar("media", unit="files") as advance:
        results = media_capture.run(capture, today, days, force=True, progress=advance)
    rows = [r.as_dict() for r in results]
    if output == "json":
        ui.print_json({"lake": capture.storage.url, "days": rows})
    else:
        ui.print_table(rows, media_capture.RESULT_COLUMNS, title=f"media capture on {capture.storage.url}")
    for source, why in capture.disabled.items():
        print(f"note: {source} media not fetched: {why}", file=sys.stderr)
    for r in results:
        for warning in r.warnings:
            print(f"warning: {ui.safe_text(warning)}", file=sys.stderr)
    pending = sum(r.counts.get("pending", 0) for r in results)
    if pending:
        print(f"{pending} media still pending (timeouts, throttling, server errors): the schedule retries them, or "
              "run chatlake media fetch again later", file=sys.stderr)
    return 0
