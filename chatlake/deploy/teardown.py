"""The steps of `destroy`, in the order that leaves nothing dangling: stop Telegram sending first, then the Athena
objects over the lake, then `chalice delete` (API, functions, roles, schedule), the logs, the layer versions no
function uses any more, the parameters, and the bucket last, only when asked and after saying what it holds.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from chatlake.deploy import athena_console
from chatlake.deploy import stage as st
from chatlake.deploy.plan import Change, Context, error_code
from chatlake.deploy.steps import athena_engine, bot_api, database_exists, log_groups, run_chalice
from chatlake.deploy.telegram_api import ROUTE, TelegramError

LAYER_PREFIX = "chatlake-pyarrow-"
KEPT_WITH_DATA = ("pii-salt",)  # hashes in the tables stay reproducible only with the same salt


class TelegramWebhookOff:
    name = "Telegram webhook"

    def check(self, ctx: Context) -> Change:
        base = st.api_url(ctx.paths, ctx.stage)
        api = bot_api(ctx)
        if api is None or not base:
            return Change(self.name, "no bot token or no API: nothing registered by this stage")
        info = api.call("getWebhookInfo") or {}
        if info.get("url") != f"{base}{ROUTE}":
            return Change(self.name, f"Telegram sends to {info.get('url') or '(no webhook)'}, not this stage")
        return Change(self.name, f"Telegram sends to {info['url']}", ["deleteWebhook (pending updates are kept)"])

    def apply(self, ctx: Context, change: Change) -> None:
        api = bot_api(ctx)
        try:
            if api is not None:
                api.call("deleteWebhook", {"drop_pending_updates": False})
        except TelegramError as e:
            raise st.DeployError(str(e)) from None


class AthenaOff:
    name = "Athena"

    def check(self, ctx: Context) -> Change:
        engine = athena_engine(ctx)
        saved = athena_console.existing(ctx.clients.athena, engine.workgroup, engine.database)
        actions = [f"delete {len(saved)} saved queries"] if saved else []
        exists = database_exists(ctx.clients.athena, engine.database)
        if exists:
            actions.append(f"DROP DATABASE {engine.database} CASCADE (table definitions only: the lake's files stay)")
        return Change(self.name, f"database {engine.database} {'exists' if exists else 'does not exist'}, "
                                 f"{len(saved)} saved queries", actions, {"drop": exists})

    def apply(self, ctx: Context, change: Change) -> None:
        engine = athena_engine(ctx)
        athena_console.delete_ours(ctx.clients.athena, engine.workgroup, engine.database)
        if change.detail["drop"]:
            engine.execute(f"DROP DATABASE IF EXISTS {engine.database} CASCADE")


class ChaliceDelete:
    name = "chalice delete"

    def check(self, ctx: Context) -> Change:
        deployed = st.deployed_resources(ctx.paths, ctx.stage)
        if not deployed:
            return Change(self.name, "nothing deployed by chalice for this stage")
        return Change(self.name, f"{len(deployed)} resources: {', '.join(sorted(deployed))}",
                      [f"chalice delete --stage {ctx.stage}"])

    def apply(self, ctx: Context, change: Change) -> None:
        run_chalice(ctx, "delete")


class LogsOff:
    name = "logs"

    def check(self, ctx: Context) -> Change:
        found = [g for g in log_groups(ctx.stage, eum=True)  # whatever the config says now: only existing ones
                 if any(x["logGroupName"] == g for x in
                        ctx.clients.logs.describe_log_groups(logGroupNamePrefix=g).get("logGroups", []))]
        return Change(self.name, f"{len(found)} log groups", [f"delete {g}" for g in found], {"groups": found})

    def apply(self, ctx: Context, change: Change) -> None:
        for group in change.detail["groups"]:
            with contextlib.suppress(ctx.clients.logs.exceptions.ResourceNotFoundException):
                ctx.clients.logs.delete_log_group(logGroupName=group)


def _layers_in_use(lambda_: Any) -> set[str]:
    used: set[str] = set()
    for page in lambda_.get_paginator("list_functions").paginate():
        for fn in page.get("Functions", []):
            used.update(layer["Arn"] for layer in fn.get("Layers", []))
    return used


class LayersOff:
    """The pyarrow layer is shared by the stages of one account and region: a version another stage's function
    still uses is kept."""

    name = "layer versions"

    def check(self, ctx: Context) -> Change:
        lambda_ = ctx.clients.lambda_
        ours = [(layer["LayerName"], v) for layer in lambda_.list_layers().get("Layers", [])
                if layer["LayerName"].startswith(LAYER_PREFIX)
                for v in lambda_.list_layer_versions(LayerName=layer["LayerName"]).get("LayerVersions", [])]
        used = _layers_in_use(lambda_)
        unused = [(name, v["Version"], v["LayerVersionArn"]) for name, v in ours if v["LayerVersionArn"] not in used]
        kept = len(ours) - len(unused)
        text = f"{len(ours)} versions of chatlake's layers"
        if kept:
            text += f", {kept} in use by another stage (kept)"
        return Change(self.name, text, [f"delete {arn}" for _, _, arn in unused], {"unused": unused})

    def apply(self, ctx: Context, change: Change) -> None:
        for name, version, _ in change.detail["unused"]:
            ctx.clients.lambda_.delete_layer_version(LayerName=name, VersionNumber=version)


class ParametersOff:
    name = "parameters"

    def __init__(self, keep_data: bool) -> None:
        self.keep_data = keep_data

    def check(self, ctx: Context) -> Change:
        prefix = st.parameter_prefix(ctx.stage)
        names = []
        for page in ctx.clients.ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix.rstrip("/"),
                                                                                     Recursive=True):
            names += [p["Name"] for p in page.get("Parameters", [])]
        kept = [n for n in names if self.keep_data and n.removeprefix(prefix) in KEPT_WITH_DATA]
        gone = [n for n in names if n not in kept]
        text = f"{len(names)} under {prefix}" + (f" ({', '.join(kept)} kept with the data)" if kept else "")
        return Change(self.name, text, [f"delete {n}" for n in gone], {"names": gone})

    def apply(self, ctx: Context, change: Change) -> None:
        names = change.detail["names"]
        for i in range(0, len(names), 10):  # DeleteParameters takes at most 10
            ctx.clients.ssm.delete_parameters(Names=names[i:i + 10])


def count_objects(s3: Any, bucket: str) -> tuple[int, int]:
    """(current objects, stored versions including delete markers) of a versioned bucket."""
    current = versions = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            versions += 1
            current += bool(v.get("IsLatest"))
        versions += len(page.get("DeleteMarkers", []))
    return current, versions


class BucketOff:
    name = "bucket"

    def __init__(self, keep_data: bool, confirmed_name: str | None = None) -> None:
        self.keep_data = keep_data
        self.confirmed_name = confirmed_name

    def check(self, ctx: Context) -> Change:
        bucket = ctx.state.bucket
        try:
            ctx.clients.s3.head_bucket(Bucket=bucket)
        except Exception as e:
            if error_code(e) in ("404", "NoSuchBucket", "NotFound"):
                return Change(self.name, f"s3://{bucket} does not exist")
            raise
        current, versions = count_objects(ctx.clients.s3, bucket)
        text = f"s3://{bucket} holds {current} objects ({versions} stored versions)"
        if self.keep_data:
            return Change(self.name, text + ": kept (--keep-data)")
        return Change(self.name, text, [f"delete all {versions} versions and the bucket, if you confirm"],
                      {"current": current})

    def apply(self, ctx: Context, change: Change) -> None:
        bucket = ctx.state.bucket
        answer = self.confirmed_name
        if answer is None and ctx.confirm is not None:
            answer = ctx.confirm(f"Delete s3://{bucket} and its {change.detail['current']} objects for good? "
                                 "Type the bucket's name to confirm: ").strip()
        if answer != bucket:
            ctx.notes.append(f"kept s3://{bucket} (not confirmed); to delete it later: chatlake destroy --stage "
                             f"{ctx.stage} --delete-bucket {bucket}")
            return
        s3 = ctx.clients.s3
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
        ctx.state.applied["bucket deleted"] = bucket


def destroy_steps(keep_data: bool, delete_bucket: str | None) -> list[Any]:
    return [TelegramWebhookOff(), AthenaOff(), ChaliceDelete(), LogsOff(), LayersOff(), ParametersOff(keep_data),
            BucketOff(keep_data, delete_bucket)]


def forget_stage(ctx: Context) -> None:
    """After a complete destroy: the rendered project goes; the stage's answers stay while its bucket does."""
    shutil.rmtree(ctx.paths.project, ignore_errors=True)
    if ctx.state.applied.get("bucket deleted") == ctx.state.bucket:
        shutil.rmtree(ctx.paths.root, ignore_errors=True)
    else:
        ctx.state.applied = {}
        ctx.state.layer_arn = None
        ctx.save()
