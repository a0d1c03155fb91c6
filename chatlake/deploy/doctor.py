"""`chatlake doctor`: is the deployed stage healthy? Each check says what it found and, when something is wrong,
the command that fixes it. Read-only: it never changes anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from chalicelib import layout
from chalicelib.settings import ConfigError, Settings
from chatlake.deploy import secrets, telegram_api
from chatlake.deploy import stage as st
from chatlake.deploy.command import MakeClients, open_stage
from chatlake.deploy.plan import Context, Options, error_code
from chatlake.deploy.steps import (
    _encrypted,
    _public_access_blocked,
    bot_api,
    log_groups,
    parameter_exists,
    stage_functions,
)

RECENT_DAYS = 8  # the ETL's retry window and today
ERROR_HOURS = 24  # a Telegram delivery error older than this is history, not a problem


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _settings(settings: Settings) -> Finding:
    try:
        settings.retry_window_days  # noqa: B018 - parsing is the check
        settings.pii_salt()
    except ConfigError as e:
        return Finding("settings", False, str(e), "fix the setting in your environment or .env")
    return Finding("settings", True, "local settings parse")


def checks(ctx: Context, now: datetime) -> list[Finding]:
    stage, c = ctx.stage, ctx.clients
    redeploy = f"chatlake deploy --stage {stage}"
    found = [_settings(ctx.settings)]
    bucket = ctx.state.bucket
    try:
        c.s3.head_bucket(Bucket=bucket)
        problems = [what for what, ok in (("public access not blocked", _public_access_blocked(c.s3, bucket)),
                                          ("not encrypted", _encrypted(c.s3, bucket)),
                                          ("versioning off", c.s3.get_bucket_versioning(Bucket=bucket).get(
                                              "Status") == "Enabled")) if not ok]
        found.append(Finding("bucket", not problems, f"s3://{bucket}" + (": " + ", ".join(problems) if problems
                                                                          else ": private, encrypted, versioned"),
                             redeploy if problems else ""))
    except Exception as e:
        found.append(Finding("bucket", False, f"s3://{bucket}: {error_code(e) or e}", redeploy))
    absent = [p for p in secrets.PARAMETERS if not parameter_exists(c.ssm, p.name(stage))]
    missing = [p.name(stage) for p in absent if not p.optional]
    unset = "".join(f"; optional {p.name(stage)} not set ({p.optional})" for p in absent if p.optional)
    required = sum(1 for p in secrets.PARAMETERS if not p.optional)
    found.append(Finding("parameters", not missing, "missing: " + ", ".join(missing) if missing
                         else f"{required} SecureStrings under {st.parameter_prefix(stage)}{unset}",
                         redeploy if missing else ""))
    for role, function in stage_functions(ctx).items():
        try:
            conf = c.lambda_.get_function(FunctionName=function)["Configuration"]
            state, update = conf.get("State", "Active"), conf.get("LastUpdateStatus", "Successful")
            ok = state == "Active" and update != "Failed"
            found.append(Finding(f"function {role}", ok, f"{function}: {state}, last update {update}",
                                 "" if ok else redeploy))
        except Exception as e:
            found.append(Finding(f"function {role}", False, f"{function}: {error_code(e) or e}", redeploy))
    found.append(_telegram(ctx, now, redeploy))
    found.append(_last_etl(ctx, now))
    return found


def _telegram(ctx: Context, now: datetime, redeploy: str) -> Finding:
    base = st.api_url(ctx.paths, ctx.stage)
    try:
        api = bot_api(ctx)
        if api is None:
            return Finding("telegram", False, "no bot token parameter", redeploy)
        info = api.call("getWebhookInfo") or {}
    except telegram_api.TelegramError as e:
        return Finding("telegram", False, str(e), f"check the bot token: {redeploy}")
    want = f"{base}{telegram_api.ROUTE}" if base else None
    pending = info.get("pending_update_count", 0)
    detail = f"webhook {info.get('url') or '(none)'}, {pending} pending"
    if info.get("url") != want:
        return Finding("telegram", False, detail + f" (expected {want})", redeploy)
    error_at = info.get("last_error_date")
    if error_at and now - datetime.fromtimestamp(int(error_at), UTC) < timedelta(hours=ERROR_HOURS):
        when = datetime.fromtimestamp(int(error_at), UTC).strftime("%Y-%m-%d %H:%M UTC")
        message = info.get("last_error_message") or "(no message)"
        return Finding("telegram", False, f"{detail}; last delivery error {when}: {message}",
                       f"aws logs tail /aws/lambda/{st.function_names(ctx.stage)[st.API_FUNCTION]} --since 1h")
    return Finding("telegram", True, detail + ", no recent error")


def _last_etl(ctx: Context, now: datetime) -> Finding:
    from chalicelib.storage import S3Storage

    storage = S3Storage(ctx.state.bucket, client=ctx.clients.s3)
    today = now.date()
    days = [today - timedelta(days=i) for i in range(1, RECENT_DAYS)]
    try:
        done = [d for d in days if any(True for _ in storage.keys(layout.commit_key(d)))]
        waiting = [d for d in days if d not in done
                   and any(any(True for _ in storage.keys(layout.raw_prefix(s, d))) for s in layout.RAW_SOURCES)]
    except Exception as e:
        return Finding("last ETL run", False, f"cannot read the lake: {e}", "chatlake doctor again once S3 answers")
    last = f"last complete day {max(done)}" if done else "no ETL run in the last week"
    etl_logs = f"aws logs tail {log_groups(ctx.stage)[1]} --since 1d"
    if waiting:
        first, end = min(waiting), max(waiting)
        return Finding("last ETL run", False, f"{last}; {len(waiting)} day(s) with deliveries and no ETL run",
                       f"{etl_logs}; then DATALAKE_URL={ctx.state.datalake_url} chatlake backfill --start {first} "
                       f"--end {end}")
    return Finding("last ETL run", True, last + ("" if done else " (and no deliveries to process)"))


def deployed_stages(state_root: Path | None = None) -> list[str]:
    """The stages this checkout deployed (those with a `.deploy/<stage>/stage.json`)."""
    return [s for s in st.STAGES if st.paths(s, state_root or st.STATE_ROOT).state_file.is_file()]


def doctor(stage: str, make_clients: MakeClients, settings: Settings, *, state_root: Path | None = None,
           out: TextIO | None = None, now: datetime | None = None) -> int:
    """Prints each check; exit 1 when anything is wrong."""
    out = out or sys.stdout
    try:
        state, clients, p = open_stage(stage, make_clients, None, None, state_root, create=False)
    except st.DeployError as e:
        print(f"FAIL credentials/stage: {e}", file=out)
        return 1
    ctx = Context(stage, state, p, clients, settings, Options(), out)
    print(f"chatlake doctor: stage {stage}, account {state.account}, region {state.region} (credentials ok)",
          file=out)
    findings = checks(ctx, now or datetime.now(UTC))
    for f in findings:
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.check}: {f.detail}", file=out)
        if not f.ok and f.fix:
            print(f"       fix: {f.fix}", file=out)
    bad = [f for f in findings if not f.ok]
    print(f"\n{len(bad)} problem(s)" if bad else "\nall good", file=out)
    return 1 if bad else 0

