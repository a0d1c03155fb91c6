"""The steps of `deploy`, in order: bucket, parameters, layer, rendered project, `chalice deploy`, logs,
throttling, reserved concurrency, Athena, the Athena console, the Telegram webhook. See `plan.py` for the contract
of a step (check -> plan -> apply).
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from pathlib import Path
from typing import Any

from chatlake.deploy import athena_console, layer, secrets, telegram_api
from chatlake.deploy import stage as st
from chatlake.deploy.plan import Change, Context, error_code

NONCURRENT_DAYS = 30  # versioning keeps overwritten/deleted objects this long, then they go
MULTIPART_DAYS = 7
UNRESERVED_MINIMUM = 10  # Lambda keeps at least this much of the account's concurrency unreserved


# --- the bucket -----------------------------------------------------------------------------------------------


def lifecycle_rules(raw_days: int | None, table_days: int | None) -> list[dict[str, Any]]:
    """Old versions expire (versioning is for mistakes, not for keeping every ETL rewrite forever); with
    RAW_RETENTION_DAYS / TABLE_RETENTION_DAYS, the layers expire too (`chatlake.retention.expiry_rules`, the rules
    `chatlake prune --lifecycle` also applies)."""
    from chatlake.retention import expiry_rules

    rules: list[dict[str, Any]] = [{
        "ID": "chatlake-old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": MULTIPART_DAYS},
    }]
    return rules + expiry_rules(raw_days, table_days)


class Bucket:
    name = "bucket"

    def check(self, ctx: Context) -> Change:
        s3, bucket = ctx.clients.s3, ctx.state.bucket
        rules = lifecycle_rules(ctx.settings.raw_retention_days, ctx.settings.table_retention_days)
        change = Change(self.name, f"s3://{bucket}", detail={"rules": rules})
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as e:
            if error_code(e) in ("403", "AccessDenied", "Forbidden"):
                raise st.DeployError(f"bucket {bucket} exists and belongs to another account (or you may not read "
                                     "it): choose another name with --bucket") from None
            if error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            change.exists = f"s3://{bucket} does not exist"
            change.actions = [f"create bucket {bucket} in {ctx.state.region}", "block all public access",
                              "encrypt at rest (SSE-S3)", "turn versioning on", _rules_text(rules)]
            change.detail["create"] = True
            return change
        if not _public_access_blocked(s3, bucket):
            change.actions.append("block all public access")
        if not _encrypted(s3, bucket):
            change.actions.append("encrypt at rest (SSE-S3)")
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
            change.actions.append("turn versioning on")
        if _lifecycle(s3, bucket) != rules:
            change.actions.append(_rules_text(rules))
        return change

    def apply(self, ctx: Context, change: Change) -> None:
        s3, bucket = ctx.clients.s3, ctx.state.bucket
        if change.detail.get("create"):
            params: dict[str, Any] = {"Bucket": bucket}
            if ctx.state.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.state.region}
            s3.create_bucket(**params)
        actions = " ".join(change.actions)
        if "public access" in actions:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
        if "encrypt" in actions:
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        if "versioning" in actions:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        if "lifecycle" in actions:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                                  LifecycleConfiguration={"Rules": change.detail["rules"]})


def _rules_text(rules: list[dict[str, Any]]) -> str:
    expiring = [f"{r['Filter']['Prefix']} after {r['Expiration']['Days']} days" for r in rules if "Expiration" in r]
    return (f"lifecycle: old versions expire after {NONCURRENT_DAYS} days"
            + (f"; expire {', '.join(expiring)}" if expiring else ""))


def _public_access_blocked(s3: Any, bucket: str) -> bool:
    try:
        conf = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except Exception as e:
        if error_code(e) == "NoSuchPublicAccessBlockConfiguration":
            return False
        raise
    return all(conf.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                     "RestrictPublicBuckets"))


def _encrypted(s3: Any, bucket: str) -> bool:
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except Exception as e:
        if error_code(e) == "ServerSideEncryptionConfigurationNotFoundError":
            return False
        raise
    return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") in ("AES256", "aws:kms")
               for r in rules)


def _lifecycle(s3: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception as e:
        if error_code(e) == "NoSuchLifecycleConfiguration":
            return []
        raise
    keys = ("ID", "Status", "Filter", "Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload")
    return [{k: r[k] for k in keys if k in r} for r in rules]


# --- the parameters -------------------------------------------------------------------------------------------


def parameter_exists(ssm: Any, name: str) -> bool:
    try:
        ssm.get_parameter(Name=name)  # without decryption: the value is not read
    except ssm.exceptions.ParameterNotFound:
        return False
    return True


def read_parameter(ssm: Any, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


class Parameters:
    name = "parameters"

    def check(self, ctx: Context) -> Change:
        absent = [p for p in secrets.PARAMETERS if not parameter_exists(ctx.clients.ssm, p.name(ctx.stage))]
        missing = [p for p in absent if secrets.offered(p, ctx.options.from_env)]
        required = [p for p in secrets.PARAMETERS if not p.optional]
        have = len(required) - sum(1 for p in absent if not p.optional)
        unset = "".join(f"; optional {p.name(ctx.stage)} not set ({p.optional}: --from-env with {p.setting}, or "
                        "aws ssm put-parameter)" for p in absent if p not in missing)
        change = Change(self.name, f"{have} of {len(required)} SecureStrings under "
                                   f"{st.parameter_prefix(ctx.stage)}{unset}", detail={"missing": missing})
        for p in missing:
            how = "random value" if p.prompt is None else ("from the environment" if ctx.options.from_env
                                                          else "asked, not echoed")
            change.actions.append(f"put {p.name(ctx.stage)} ({how})")
        return change

    def apply(self, ctx: Context, change: Change) -> None:
        ask = ctx.ask_secret or secrets.asker(ctx.options.from_env)
        values = {p: (secrets.generate() if p.prompt is None else ask(p)) for p in change.detail["missing"]}
        for p, value in values.items():  # all asked first: a typo stores nothing
            ctx.clients.ssm.put_parameter(Name=p.name(ctx.stage), Value=value, Type="SecureString",
                                          Description=f"chatlake {ctx.stage}: {p.setting}", Overwrite=False)
            ctx.created_parameters.add(p.setting)


# --- the pyarrow layer ----------------------------------------------------------------------------------------


def _pinned() -> str:
    return layer.pinned_version(layer.REQUIREMENTS_DEV.read_text())


def build_layer(ctx: Context, workdir: Path) -> layer.LayerZip:
    """`layer.build`, with pip started in the secret-free environment of every subprocess of deploy."""
    version = _pinned()
    wheel = layer.download_wheel(version, workdir, run=functools.partial(ctx.run, env=ctx.subprocess_env()))
    return layer.build_zip(wheel, workdir / f"{layer.layer_name(version)}.zip")


class Layer:
    name = "pyarrow layer"

    def check(self, ctx: Context) -> Change:
        version = _pinned()
        name = layer.layer_name(version)
        versions = ctx.clients.lambda_.list_layer_versions(LayerName=name).get("LayerVersions", [])
        runtime = f"python{layer.LAMBDA_PYTHON}"
        usable = [v for v in versions if runtime in v.get("CompatibleRuntimes", [runtime])]
        if usable:
            arn = max(usable, key=lambda v: v["Version"])["LayerVersionArn"]
            change = Change(self.name, f"{arn} (pyarrow {version})")
            if ctx.state.layer_arn != arn:
                ctx.state.layer_arn = arn  # found, nothing to publish: remember it for the rendered config
                ctx.save()
            return change
        return Change(self.name, f"no layer {name} in {ctx.state.region}",
                      [f"publish pyarrow {version} (the pin in requirements-dev.txt) as layer {name}"])

    def apply(self, ctx: Context, change: Change) -> None:
        with tempfile.TemporaryDirectory(prefix="chatlake-layer-") as workdir:
            built = (ctx.build_layer or build_layer)(ctx, Path(workdir))
            ctx.state.layer_arn = layer.publish(ctx.clients.lambda_, built)
        print(f"       published {ctx.state.layer_arn}", file=ctx.out)


# --- the rendered chalice project -----------------------------------------------------------------------------


def reserved_concurrency(ctx: Context) -> int | None:
    """The webhook's reserved concurrency, unless the account is too small to reserve it (new accounts may have a
    concurrency quota of 10, all of which must stay unreserved): then None, with a note saying what to do."""
    wanted = ctx.options.reserved_concurrency
    if wanted <= 0:
        return None
    limits = ctx.clients.lambda_.get_account_settings().get("AccountLimit", {})
    unreserved = int(limits.get("UnreservedConcurrentExecutions", limits.get("ConcurrentExecutions", 1000)))
    try:
        current = ctx.clients.lambda_.get_function_concurrency(
            FunctionName=st.function_names(ctx.stage)[st.API_FUNCTION]).get("ReservedConcurrentExecutions") or 0
    except Exception as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
        current = 0
    if unreserved + current - wanted < UNRESERVED_MINIMUM:
        note = (f"reserved concurrency {wanted} for the webhook does not fit this account's Lambda concurrency quota "
                f"({unreserved + current} unreserved; {UNRESERVED_MINIMUM} must stay free): the webhook runs without "
                "it. Ask for a higher quota (Service Quotas > AWS Lambda > Concurrent executions) and deploy again, "
                "or pass --reserved-concurrency N")
        if note not in ctx.notes:
            ctx.notes.append(note)
        return None
    return wanted


class Project:
    name = "stage config"

    def check(self, ctx: Context) -> Change:
        ctx.state.reserved_concurrency = reserved_concurrency(ctx)
        files = st.project_files(ctx.state, ctx.project_dir or st.PROJECT_DIR)
        changed = st.differences(ctx.paths.project, files)
        target = ctx.paths.project
        shown = f"{target} (rendered from .chalice/config.json and policies, git-ignored)"
        change = Change(self.name, shown, detail={"files": files})
        if changed:
            listed = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            change.actions.append(f"write {len(changed)} file(s): {listed}")
        if not ctx.state.layer_arn:
            change.actions.append("the ETL's layer: the ARN the layer step publishes")
        return change

    def apply(self, ctx: Context, change: Change) -> None:
        st.write_project(ctx.paths.project, st.project_files(ctx.state, ctx.project_dir or st.PROJECT_DIR))
        _adopt_old_deployment(ctx)


def _adopt_old_deployment(ctx: Context) -> None:
    """A stage first deployed by hand (`chalice deploy` in the project) keeps its resources: chalice's record of
    them moves into the rendered project, so this deploy updates them instead of creating a second API."""
    mine = ctx.paths.deployed_file(ctx.stage)
    old = (ctx.project_dir or st.PROJECT_DIR) / ".chalice" / "deployed" / f"{ctx.stage}.json"
    if not mine.exists() and old.is_file():
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_bytes(old.read_bytes())
        print(f"       adopted {old} (the stage deployed by hand before)", file=ctx.out)


# --- chalice deploy -------------------------------------------------------------------------------------------


def stage_functions(ctx: Context) -> dict[str, str]:
    """The functions chalice deploys for this stage (`whatsapp_eum` only when its config names the topic)."""
    return st.function_names(ctx.stage, st.has_eum(st.template_config(ctx.project_dir or st.PROJECT_DIR), ctx.stage))


def _functions_exist(ctx: Context) -> bool:
    for function in stage_functions(ctx).values():
        try:
            ctx.clients.lambda_.get_function(FunctionName=function)
        except Exception as e:
            if error_code(e) == "ResourceNotFoundException":
                return False
            raise
    return True


def chalice_command(ctx: Context, verb: str) -> list[str]:
    import sys

    chalice = Path(sys.executable).with_name("chalice")
    return [str(chalice), "--project-dir", str(ctx.paths.project), verb, "--stage", ctx.stage]


def run_chalice(ctx: Context, verb: str) -> str:
    result = ctx.run(chalice_command(ctx, verb), env=ctx.subprocess_env(), capture_output=True, text=True,
                     timeout=1800)
    output = (result.stdout or "") + (result.stderr or "")
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-60:])
        raise st.DeployError(f"chalice {verb} --stage {ctx.stage} failed; run the command again to resume:\n{tail}")
    return output


class Chalice:
    name = "chalice deploy"

    def check(self, ctx: Context) -> Change:
        files = st.project_files(ctx.state, ctx.project_dir or st.PROJECT_DIR)
        digest = st.fingerprint(files)
        deployed = st.deployed_resources(ctx.paths, ctx.stage)
        url = st.api_url(ctx.paths, ctx.stage)
        if deployed and ctx.state.applied.get(self.name) == digest and _functions_exist(ctx):
            return Change(self.name, f"deployed, unchanged since: {url}/")
        what = "the code or config changed" if deployed else "not deployed yet"
        return Change(self.name, f"{url or 'no REST API'} ({what})",
                      [f"chalice deploy --stage {ctx.stage}: {len(stage_functions(ctx))} functions, their roles, "
                       "the REST API, the schedules"], {"digest": digest})

    def apply(self, ctx: Context, change: Change) -> None:
        output = run_chalice(ctx, "deploy")
        for line in output.splitlines():
            if line.strip().startswith(("- Rest API URL", "- Lambda ARN", "Creating", "Updating")):
                print(f"       {line.strip()}", file=ctx.out)
        ctx.state.applied[self.name] = change.detail["digest"]


# --- after chalice: logs, throttling, concurrency -------------------------------------------------------------


def log_groups(stage: str, eum: bool = False) -> list[str]:
    """The functions' log groups: the webhook's first, the daily ETL's second."""
    return [f"/aws/lambda/{name}" for name in st.function_names(stage, eum).values()]


class LogRetention:
    name = "log retention"

    def check(self, ctx: Context) -> Change:
        days = st.log_retention_days(st.template_config(ctx.project_dir or st.PROJECT_DIR))
        change = Change(self.name, f"{days} days for every function's logs", detail={"days": days, "groups": []})
        for group in [f"/aws/lambda/{name}" for name in stage_functions(ctx).values()]:
            found = [g for g in ctx.clients.logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
                     if g["logGroupName"] == group]
            if not found:
                change.actions.append(f"create {group}, keep {days} days")
                change.detail["groups"].append((group, True))
            elif found[0].get("retentionInDays") != days:
                change.actions.append(f"{group}: keep {days} days (now {found[0].get('retentionInDays', 'forever')})")
                change.detail["groups"].append((group, False))
        return change

    def apply(self, ctx: Context, change: Change) -> None:
        for group, create in change.detail["groups"]:
            if create:
                with contextlib.suppress(ctx.clients.logs.exceptions.ResourceAlreadyExistsException):
                    ctx.clients.logs.create_log_group(logGroupName=group)
            ctx.clients.logs.put_retention_policy(logGroupName=group, retentionInDays=change.detail["days"])


def rest_api_id(ctx: Context) -> str | None:
    api = st.deployed_resources(ctx.paths, ctx.stage).get("rest_api")
    return api.get("rest_api_id") if api else None


class Throttling:
    name = "API throttling"

    def check(self, ctx: Context) -> Change:
        rate, burst = ctx.options.rate_limit, ctx.options.burst_limit
        wanted = f"{rate:g} requests/s, bursts of {burst}"
        api_id = rest_api_id(ctx)
        if not api_id:
            return Change(self.name, "no REST API yet", [f"stage {st.API_STAGE_NAME}: {wanted}"])
        stage = ctx.clients.apigateway.get_stage(restApiId=api_id, stageName=st.API_STAGE_NAME)
        now = stage.get("methodSettings", {}).get("*/*", {})
        have = (now.get("throttlingRateLimit"), now.get("throttlingBurstLimit"))
        if have == (float(rate), burst):
            return Change(self.name, f"{api_id}/{st.API_STAGE_NAME}: {wanted}")
        now_text = "no throttling" if have == (None, None) else f"{have[0]:g}/s, bursts of {have[1]}"
        return Change(self.name, f"{api_id}/{st.API_STAGE_NAME}: {now_text}", [f"throttle every method to {wanted}"])

    def apply(self, ctx: Context, change: Change) -> None:
        api_id = rest_api_id(ctx)
        if not api_id:
            raise st.DeployError("the REST API is not deployed: run deploy again")
        ctx.clients.apigateway.update_stage(restApiId=api_id, stageName=st.API_STAGE_NAME, patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": f"{ctx.options.rate_limit:g}"},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(ctx.options.burst_limit)},
        ])


class Concurrency:
    """Checks that the reserved concurrency the rendered config gives the webhook is what Lambda has."""

    name = "webhook concurrency"

    def check(self, ctx: Context) -> Change:
        function = st.function_names(ctx.stage)[st.API_FUNCTION]
        wanted = ctx.state.reserved_concurrency
        try:
            have = ctx.clients.lambda_.get_function_concurrency(FunctionName=function).get(
                "ReservedConcurrentExecutions")
        except Exception as e:
            if error_code(e) != "ResourceNotFoundException":
                raise
            return Change(self.name, f"{function} is not deployed yet",
                          [f"reserve {wanted} concurrent executions (chalice deploy sets it)"] if wanted else [])
        text = f"{function}: {have or 'no'} reserved concurrent executions"
        if have == wanted:
            return Change(self.name, text)
        return Change(self.name, text, [f"reserve {wanted}" if wanted else "remove the reservation"])

    def apply(self, ctx: Context, change: Change) -> None:
        function = st.function_names(ctx.stage)[st.API_FUNCTION]
        if ctx.state.reserved_concurrency:
            ctx.clients.lambda_.put_function_concurrency(
                FunctionName=function, ReservedConcurrentExecutions=ctx.state.reserved_concurrency)
        else:
            ctx.clients.lambda_.delete_function_concurrency(FunctionName=function)


# --- Athena ---------------------------------------------------------------------------------------------------


def stage_setting(ctx: Context, name: str, default: str | None = None) -> str | None:
    """A setting of the stage, as the rendered config gives it to the functions."""
    env = st.stage_environment(st.template_config(ctx.project_dir or st.PROJECT_DIR), ctx.stage)
    if name == "DATALAKE_URL":
        return ctx.state.datalake_url
    if name == "ATHENA_OUTPUT_URL":
        return f"{ctx.state.datalake_url}/{st.ATHENA_RESULTS}"
    return env.get(name) or default


def athena_engine(ctx: Context) -> Any:
    from chatlake import query

    return query.AthenaEngine(ctx.clients.athena, query.check_database(stage_setting(ctx, "ATHENA_DATABASE",
                                                                                     "chatlake")),
                              stage_setting(ctx, "ATHENA_WORKGROUP", "primary"),
                              stage_setting(ctx, "ATHENA_OUTPUT_URL"))


def database_exists(athena: Any, database: str) -> bool:
    try:
        athena.get_database(CatalogName="AwsDataCatalog", DatabaseName=database)
    except Exception as e:
        if error_code(e) in ("MetadataException", "EntityNotFoundException", "InvalidRequestException"):
            return False
        raise
    return True


class Athena:
    name = "Athena tables"

    def check(self, ctx: Context) -> Change:
        from chatlake import query

        engine = athena_engine(ctx)
        statements = query.athena_ddl(engine.database, query.athena_location(ctx.state.datalake_url))
        digest = st.fingerprint({s.name: s.sql.encode() for s in statements})
        exists = database_exists(ctx.clients.athena, engine.database)
        if exists and ctx.state.applied.get(self.name) == digest:
            return Change(self.name, f"database {engine.database}: tables and views as in sql/")
        why = "the DDL in sql/ changed" if exists else "no database yet"
        return Change(self.name, f"database {engine.database} ({why})",
                      [f"setup-athena: {len(statements)} statements (IF NOT EXISTS / OR REPLACE VIEW)"],
                      {"digest": digest, "statements": statements})

    def apply(self, ctx: Context, change: Change) -> None:
        from chatlake import query

        query.setup_athena(athena_engine(ctx), change.detail["statements"],
                           echo=lambda line: print(f"       {line}", file=ctx.out))
        ctx.state.applied[self.name] = change.detail["digest"]


class AthenaConsole:
    name = "Athena saved queries"

    def check(self, ctx: Context) -> Change:
        from chatlake import query

        engine = athena_engine(ctx)
        files = query.analytics()
        p = athena_console.plan(ctx.clients.athena, engine.workgroup, engine.database, files)
        return Change(self.name, f"{p.unchanged} of {len(files)} analytics queries saved and current in workgroup "
                                 f"{engine.workgroup}", p.actions, {"plan": p, "workgroup": engine.workgroup})

    def apply(self, ctx: Context, change: Change) -> None:
        athena_console.apply(ctx.clients.athena, change.detail["workgroup"], change.detail["plan"])


# --- Telegram -------------------------------------------------------------------------------------------------


def bot_api(ctx: Context) -> telegram_api.BotApi | None:
    token = read_parameter(ctx.clients.ssm, secrets.by_setting("TELEGRAM_BOT_TOKEN").name(ctx.stage))
    return telegram_api.BotApi(ctx.settings.telegram_api_url, token) if token else None


class TelegramWebhook:
    name = "Telegram webhook"

    def check(self, ctx: Context) -> Change:
        base = st.api_url(ctx.paths, ctx.stage)
        api = bot_api(ctx)
        if not base or api is None:
            return Change(self.name, "waiting for the REST API and the bot token",
                          ["setWebhook <API>/telegram with the secret token and the allowed updates"])
        url = f"{base}{telegram_api.ROUTE}"
        info = api.call("getWebhookInfo") or {}
        have_updates = sorted(info.get("allowed_updates") or [])
        text = f"Telegram sends to {info.get('url') or '(no webhook)'}"
        reasons = []
        if info.get("url") != url:
            reasons.append(f"point the bot at {url}")
        if have_updates != sorted(telegram_api.ALLOWED_UPDATES):
            reasons.append("allowed updates: " + ", ".join(telegram_api.ALLOWED_UPDATES))
        if "TELEGRAM_SECRET_TOKEN" in ctx.created_parameters:
            reasons.append("a new secret token")
        change = Change(self.name, text, detail={"url": url})
        if reasons:
            change.actions.append("setWebhook: " + "; ".join(reasons))
        return change

    def apply(self, ctx: Context, change: Change) -> None:
        api = bot_api(ctx)
        secret = read_parameter(ctx.clients.ssm, secrets.by_setting("TELEGRAM_SECRET_TOKEN").name(ctx.stage))
        if api is None or not secret:
            raise st.DeployError("the bot token or the secret token parameter is missing: run deploy again")
        try:
            telegram_api.set_webhook(api, change.detail["url"], secret)
        except telegram_api.TelegramError as e:
            raise st.DeployError(str(e)) from None


DEPLOY_STEPS = (Bucket(), Parameters(), Layer(), Project(), Chalice(), LogRetention(), Throttling(), Concurrency(),
                Athena(), AthenaConsole(), TelegramWebhook())


def print_meta_step(ctx: Context, show_secrets: bool) -> None:
    """What to paste into Meta's dashboard. The verify token only answers Meta's subscription handshake (deliveries
    are authenticated by the App Secret's signature); it is shown on a terminal only, never into a log."""
    base = st.api_url(ctx.paths, ctx.stage)
    out = ctx.out
    if not base:
        print("WhatsApp: the callback URL is known once the REST API is deployed (run without --dry-run)", file=out)
        return
    name = secrets.by_setting("WHATSAPP_VERIFY_TOKEN").name(ctx.stage)
    print("\nWhatsApp, in the Meta app dashboard: WhatsApp > Configuration > Webhook > Edit", file=out)
    print(f"  callback URL:  {base}/whatsapp", file=out)
    if show_secrets:
        token = read_parameter(ctx.clients.ssm, name)
        print(f"  verify token:  {token}", file=out)
    else:
        print(f"  verify token:  aws ssm get-parameter --with-decryption --name {name} "
              "--query Parameter.Value --output text", file=out)
    print("  then Verify and save, and subscribe to the `messages` field (and `smb_message_echoes` if you use the "
          "WhatsApp Business app)", file=out)
    topic = stage_setting(ctx, "WHATSAPP_EUM_TOPIC") or ctx.settings.get("WHATSAPP_EUM_TOPIC")
    if topic:
        print(f"  AWS End User Messaging Social: send the WhatsApp events to the SNS topic {topic}", file=out)
    print(f"\nCheck it: chatlake doctor --stage {ctx.stage}", file=out)
