"""The scheduled runs' CloudWatch metrics: one EMF JSON line per run, failures included."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from chalicelib import metrics
from chalicelib.etl import DayResult
from chalicelib.intraday import RefreshResult


def test_a_run_logs_one_emf_line_with_its_counts_and_lag():
    out = io.StringIO()
    results = [RefreshResult(date(2026, 11, 20), deliveries=7, messages=5, statuses=2, rejects=1, lag_seconds=61.0)]
    assert metrics.reported("intraday_etl", lambda: results, out) == results
    [line] = out.getvalue().splitlines()
    doc = json.loads(line)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "chatlake" and directive["Dimensions"] == [["Function"]]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names == {"Deliveries": "Count", "Rows": "Count", "Rejects": "Count", "LagSeconds": "Seconds",
                     "Failures": "Count", "Seconds": "Seconds"}
    assert (doc["Function"], doc["Deliveries"], doc["Rows"], doc["Rejects"], doc["LagSeconds"], doc["Failures"]) == (
        "intraday_etl", 7, 7, 1, 61.0, 0)
    assert isinstance(doc["_aws"]["Timestamp"], int)


def test_the_daily_run_has_no_lag_metric_and_a_failure_is_logged_then_raised():
    out = io.StringIO()
    metrics.reported("daily_etl", lambda: [DayResult(date(2026, 11, 20), deliveries=3, messages=2)], out)
    assert "LagSeconds" not in json.loads(out.getvalue())

    def broken() -> list:
        raise OSError("disk full")

    out = io.StringIO()
    with pytest.raises(OSError):
        metrics.reported("daily_etl", broken, out)
    doc = json.loads(out.getvalue())
    assert doc["Failures"] == 1 and [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "Failures", "Seconds"]
