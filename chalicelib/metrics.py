"""CloudWatch metrics of the scheduled runs, as embedded metric format (EMF) log lines.

One JSON line per run on stdout: Lambda sends it to CloudWatch Logs, which extracts the metrics (namespace
`chatlake`, dimension `Function`) with no API call and no permission beyond the logs the function has anyway.
An alarm on `Failures` (missing data treated as breaching, so a schedule that stopped running alarms too) or on
`LagSeconds` makes a failed or late run noticed: the README shows the command.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

NAMESPACE = "chatlake"
UNITS = {"Deliveries": "Count", "Rows": "Count", "Rejects": "Count", "LagSeconds": "Seconds",
         "Failures": "Count", "Seconds": "Seconds"}


def emf_record(function: str, values: dict[str, float], at_ms: int | None = None) -> dict[str, Any]:
    """One EMF document: the values as metrics of `function` (only the names in UNITS)."""
    names = [n for n in UNITS if n in values]
    return {
        "_aws": {"Timestamp": int(time.time() * 1000) if at_ms is None else at_ms, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [["Function"]],
            "Metrics": [{"Name": n, "Unit": UNITS[n]} for n in names]}]},
        "Function": function, **{n: values[n] for n in names},
    }


def run_values(results: Sequence[Any], seconds: float) -> dict[str, float]:
    """The metrics of a run of one or more days (`etl.DayResult` or `intraday.RefreshResult`)."""
    values = {
        "Deliveries": sum(r.deliveries for r in results),
        "Rows": sum(r.messages + r.statuses for r in results),
        "Rejects": sum(r.rejects for r in results),
        "Failures": 0, "Seconds": round(seconds, 3),
    }
    lags = [r.lag_seconds for r in results if getattr(r, "lag_seconds", None) is not None]
    if lags:
        values["LagSeconds"] = round(max(lags), 1)
    return values


def reported(function: str, run: Callable[[], list[Any]], out: TextIO | None = None) -> list[Any]:
    """Run a scheduled job and log its metrics; a failure is logged as `Failures: 1`, then raised again (so
    Lambda's own error metric and retry see it too)."""
    stream = out or sys.stdout
    started = time.perf_counter()
    try:
        results = run()
    except Exception:
        print(json.dumps(emf_record(function, {"Failures": 1, "Seconds": time.perf_counter() - started})),
              file=stream, flush=True)
        raise
    print(json.dumps(emf_record(function, run_values(results, time.perf_counter() - started))), file=stream,
          flush=True)
    return results
