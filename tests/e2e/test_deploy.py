"""What `chalice deploy` creates: the SAM template `chalice package --stage dev` generates, the stage configs and
IAM policies, SSM resolution of the stage's secrets, and the two Lambda packages run as Lambda would run them.

Needs PyPI (chalice downloads orjson's Lambda wheel; the layer test downloads pyarrow's). pip's cache makes
repeats take a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from chalicelib import layout, runtime, settings
from chalicelib.settings import ConfigError
from chatlake.deploy import layer as pyarrow_layer
from tests.conftest import PROJECT_DIR

CHALICE = Path(sys.executable).with_name("chalice")
CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
DEPLOYED_STAGES = ("dev", "prod")
MiB = 1024 * 1024
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def stage_env(stage: str) -> dict[str, str]:
    return CONFIG["stages"][stage]["environment_variables"]


def policy(stage: str, function: str) -> dict[str, Any]:
    name = CONFIG["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
    return json.loads((PROJECT_DIR / ".chalice" / name).read_text())


def bucket_of(stage: str) -> str:
    url = stage_env(stage)["DATALAKE_URL"]
    assert re.fullmatch(r"s3://[a-z0-9.-]+", url), f"{stage}: DATALAKE_URL {url} must be s3://bucket (no prefix)"
    return url.removeprefix("s3://")


def copy_project(dest: Path) -> Path:
    """What chalice packages (app, chalicelib, requirements, .chalice config), without caches or deployments."""
    dest.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(PROJECT_DIR / name, dest / name)
    shutil.copytree(PROJECT_DIR / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / ".chalice").mkdir()
    for f in (PROJECT_DIR / ".chalice").glob("*.json"):
        shutil.copy2(f, dest / ".chalice" / f.name)
    return dest


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`chalice package --stage dev` in a clean copy of the project: template, zip and what chalice printed."""
    root = tmp_path_factory.mktemp("package")
    project = copy_project(root / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATALAKE_", "TELEGRAM_", "WHATSAPP_"))}
    result = subprocess.run([str(CHALICE), "package", "--stage", "dev", str(root / "out")], cwd=project,
                            env={**env, **AWS_ENV}, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return {
        "sam": json.loads((root / "out" / "sam.json").read_text()),
        "zip": root / "out" / "deployment.zip",
        "output": output,
        "root": root,
    }


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> pyarrow_layer.LayerZip:
    return pyarrow_layer.build(tmp_path_factory.mktemp("layer"))


def functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


# --- the SAM template ---------------------------------------------------------------------------------------


def test_chalice_packaged_every_dependency(package):
    assert "Could not install dependencies" not in package["output"]
    assert "missing dependencies" not in package["output"]


def test_the_four_routes_go_to_the_api_handler(package):
    paths = package["sam"]["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    routes = {(path, method.upper()) for path, methods in paths.items() for method in methods}
    assert routes == {("/health", "GET"), ("/telegram", "POST"), ("/whatsapp", "GET"), ("/whatsapp", "POST")}
    for methods in paths.values():
        for spec in methods.values():
            integration = spec["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert "${APIHandler.Arn}" in integration["uri"]["Fn::Sub"]


def test_five_functions_with_their_memory_timeout_and_layers(package):
    fns = functions(package["sam"])
    assert set(fns) == {"APIHandler", "DailyEtl", "EtlShare", "IntradayEtl", "MediaCapture"}
    api, etl, intraday, media = fns["APIHandler"], fns["DailyEtl"], fns["IntradayEtl"], fns["MediaCapture"]
    share = fns["EtlShare"]  # a fanned-out day's worker: invoked by daily_etl only, no event source of its own
    assert (share["Handler"], share["MemorySize"], share["Timeout"]) == ("app.etl_share", 2048, 900)
    assert "Events" not in share and share["Layers"] == etl["Layers"]
    assert (media["Handler"], media["MemorySize"], media["Timeout"]) == ("app.media_capture", 512, 300)
    assert media["ReservedConcurrentExecutions"] == 1  # one capture run at a time
    assert media["Layers"] == CONFIG["stages"]["dev"]["lambda_functions"]["media_capture"]["layers"]
    assert media["Events"] == {"MediaCaptureEvent": {"Type": "Schedule", "Properties": {
        "Schedule": f"rate({runtime.MEDIA_EVERY_MINUTES} minutes)"}}}
    assert (api["Handler"], api["MemorySize"], api["Timeout"]) == ("app.app", 256, 10)
    assert (etl["Handler"], etl["MemorySize"], etl["Timeout"]) == ("app.daily_etl", 2048, 900)
    assert (intraday["Handler"], intraday["MemorySize"], intraday["Timeout"]) == ("app.intraday_etl", 2048, 600)
    assert intraday["ReservedConcurrentExecutions"] == 1  # two runs of one day never overlap
    for fn in (api, etl, intraday):
        assert (fn["Runtime"], fn["Architectures"], fn["CodeUri"]) == ("python3.11", ["x86_64"], "./deployment.zip")
    assert "Layers" not in api  # the webhooks never load pyarrow
    assert etl["Layers"] == CONFIG["stages"]["dev"]["lambda_functions"]["daily_etl"]["layers"] == intraday["Layers"]
    assert len(etl["Layers"]) == 1


def test_the_etl_runs_daily_after_midnight_utc(package):
    events = functions(package["sam"])["DailyEtl"]["Events"]
    hour, minute = runtime.DAILY_ETL_AT
    schedule = {"Schedule": f"cron({minute} {hour} * * ? *)"}
    assert events == {"DailyEtlEvent": {"Type": "Schedule", "Properties": schedule}}
    assert (hour, minute) == (0, 5)


def test_the_intraday_etl_runs_every_15_minutes(package):
    events = functions(package["sam"])["IntradayEtl"]["Events"]
    assert events == {"IntradayEtlEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(15 minutes)"}}}


def test_each_function_has_its_own_role_with_exactly_its_policy_file(package):
    resources = package["sam"]["Resources"]
    pairs = (("APIHandler", "ApiHandlerRole", "api_handler"), ("DailyEtl", "DailyEtlRole", "daily_etl"),
             ("EtlShare", "EtlShareRole", "etl_share"), ("IntradayEtl", "IntradayEtlRole", "intraday_etl"),
             ("MediaCapture", "MediaCaptureRole", "media_capture"))
    for fn, role, function in pairs:
        assert resources[fn]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        policies = resources[role]["Properties"]["Policies"]
        assert [p["PolicyDocument"] for p in policies] == [policy("dev", function)]
        assert "ManagedPolicyArns" not in resources[role]["Properties"]


def test_the_etl_log_group_keeps_30_days(package):
    """Only the ETL's: chalice 1.34 deploys the API handler's retention onto /aws/lambda/<app>-<stage>-api_handler,
    a group its function (named <app>-<stage>) never writes to, so docs/deploy.md sets that one with the AWS CLI."""
    groups = {k: v["Properties"] for k, v in package["sam"]["Resources"].items() if v["Type"] == "AWS::Logs::LogGroup"}
    etl_group = {"LogGroupName": {"Fn::Sub": "/aws/lambda/${DailyEtl}"}, "RetentionInDays": 30}
    share_group = {"LogGroupName": {"Fn::Sub": "/aws/lambda/${EtlShare}"}, "RetentionInDays": 30}
    intraday_group = {"LogGroupName": {"Fn::Sub": "/aws/lambda/${IntradayEtl}"}, "RetentionInDays": 30}
    media_group = {"LogGroupName": {"Fn::Sub": "/aws/lambda/${MediaCapture}"}, "RetentionInDays": 30}
    assert groups == {"DailyEtlLogGroup": etl_group, "EtlShareLogGroup": share_group,
                      "IntradayEtlLogGroup": intraday_group,
                      "MediaCaptureLogGroup": media_group}


def test_the_package_is_small_and_holds_no_pyarrow(package):
    size = package["zip"].stat().st_size
    with zipfile.ZipFile(package["zip"]) as z:
        names = z.namelist()
        unzipped = sum(i.file_size for i in z.infolist())
    top = {n.split("/")[0] for n in names}
    assert top == {"app.py", "chalice", "chalicelib", "orjson", "orjson-3.13.0.dist-info"}, top
    assert size < 1 * MiB and unzipped < 2 * MiB, (size, unzipped)
    assert not any("__pycache__" in n for n in names)


# --- the stage configs and policies -------------------------------------------------------------------------


def test_the_local_stage_sets_no_setting():
    """CONTRACT section 4: the local stage's settings come from the environment or `.env`, nowhere else."""
    names = {*settings.NAMES, *(f"{n}_PARAM" for n in settings.SECRETS)}
    local = CONFIG["stages"]["local"]
    assert "environment_variables" not in CONFIG
    assert not names & set(local.get("environment_variables", {}))
    for fn in (*CONFIG.get("lambda_functions", {}).values(), *local.get("lambda_functions", {}).values()):
        assert not names & set(fn.get("environment_variables", {}))


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_deployed_stages_name_secrets_never_hold_them(stage):
    env = stage_env(stage)
    assert set(env) == {"DATALAKE_URL", "ATHENA_DATABASE", "ATHENA_WORKGROUP", "ATHENA_OUTPUT_URL",
                        "TELEGRAM_SECRET_TOKEN_PARAM", "WHATSAPP_VERIFY_TOKEN_PARAM", "WHATSAPP_APP_SECRET_PARAM"}
    assert not set(settings.SECRETS) & set(env)
    assert env["ATHENA_OUTPUT_URL"].startswith(f"s3://{bucket_of(stage)}/athena-results/")
    for name, value in env.items():
        if name.endswith("_PARAM"):
            assert value.startswith(f"/chatlake/{stage}/"), (name, value)
    assert CONFIG["stages"][stage]["autogen_policy"] is False


def statements(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def as_list(x: Any) -> list[Any]:
        return x if isinstance(x, list) else [x]

    return {s["Sid"]: {**s, "Action": sorted(as_list(s["Action"])), "Resource": sorted(as_list(s["Resource"]))}
            for s in doc["Statement"]}


def param_arn(name: str) -> str:
    return f"arn:aws:ssm:*:*:parameter{name}"


def log_arns(function_name: str) -> list[str]:
    group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_name}"
    return [group, group + ":*"]


LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_webhooks_may_only_add_raw_and_quarantine_objects_and_read_their_secrets(stage):
    bucket, env = bucket_of(stage), stage_env(stage)
    doc = policy(stage, "api_handler")
    assert doc["Version"] == "2012-10-17" and all(s["Effect"] == "Allow" for s in doc["Statement"])
    assert statements(doc) == {
        "WriteRawAndQuarantineOnly": {
            "Sid": "WriteRawAndQuarantineOnly", "Effect": "Allow", "Action": ["s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/quarantine/*", f"arn:aws:s3:::{bucket}/raw/*"]},
        "ReadWebhookSecrets": {"Sid": "ReadWebhookSecrets", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                               "Resource": sorted(param_arn(v) for k, v in env.items() if k.endswith("_PARAM"))},
        "OwnLogs": {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS,
                    "Resource": log_arns(f"chatlake-{stage}")},
    }


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
@pytest.mark.parametrize("function", ["daily_etl", "etl_share", "intraday_etl"])
def test_the_etl_reads_raw_and_replaces_only_enriched_and_its_records(stage, function):
    """Its records (`etl/`: commit, versions, run manifests, a fanned-out day's shares) are read and written by
    the ETL functions; the daily one may also start the fan-out workers, and nothing else."""
    bucket = bucket_of(stage)
    raw, enriched, records = (f"arn:aws:s3:::{bucket}/{p}/*" for p in ("raw", "enriched", "etl"))
    assert statements(policy(stage, function)) == {
        "ListRawEnrichedAndEtl": {"Sid": "ListRawEnrichedAndEtl", "Effect": "Allow", "Action": ["s3:ListBucket"],
                                  "Resource": [f"arn:aws:s3:::{bucket}"],
                                  "Condition": {"StringLike": {"s3:prefix": ["raw/*", "enriched/*", "etl/*",
                                                                             "audit/erasure/*"]}}},
        "ReadRawEnrichedAndEtl": {"Sid": "ReadRawEnrichedAndEtl", "Effect": "Allow", "Action": ["s3:GetObject"],
                                  "Resource": [f"arn:aws:s3:::{bucket}/audit/erasure/*", enriched, records, raw]},
        "ReplaceEnrichedAndEtl": {"Sid": "ReplaceEnrichedAndEtl", "Effect": "Allow",
                                  "Action": ["s3:DeleteObject", "s3:PutObject"], "Resource": [enriched, records]},
        "ReadPiiSalt": {"Sid": "ReadPiiSalt", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                        "Resource": [param_arn(f"/chatlake/{stage}/pii-salt")]},
        "OwnLogs": {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS,
                    "Resource": log_arns(f"chatlake-{stage}-{function}")},
        **({"InvokeFanOutWorkers": {"Sid": "InvokeFanOutWorkers", "Effect": "Allow",
                                    "Action": ["lambda:InvokeFunction"],
                                    "Resource": [f"arn:aws:lambda:*:*:function:chatlake-{stage}-etl_share"]}}
           if function == "daily_etl" else {}),
    }


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_media_capture_reads_raw_writes_only_media_and_reads_only_its_tokens(stage):
    bucket = bucket_of(stage)
    raw, media, table = (f"arn:aws:s3:::{bucket}/{p}" for p in ("raw/*", "media/*", "enriched/media/*"))
    env = CONFIG["stages"][stage]["lambda_functions"]["media_capture"]["environment_variables"]
    tokens = sorted(param_arn(v) for v in env.values())
    assert statements(policy(stage, "media_capture")) == {
        "ListRawMediaAndMediaTable": {"Sid": "ListRawMediaAndMediaTable", "Effect": "Allow",
                                      "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
                                      "Condition": {"StringLike": {"s3:prefix": ["raw/*", "media/*",
                                                                                 "enriched/media/*"]}}},
        "ReadRawAndMediaTable": {"Sid": "ReadRawAndMediaTable", "Effect": "Allow", "Action": ["s3:GetObject"],
                                 "Resource": [table, raw]},
        "WriteMediaAndMediaTable": {"Sid": "WriteMediaAndMediaTable", "Effect": "Allow",
                                    "Action": ["s3:AbortMultipartUpload", "s3:PutObject"], "Resource": [table, media]},
        # End User Messaging Social copies a file to media/_staging/ (with this role's PutObject on media/*);
        # capture reads it back and deletes it, and may ask the service for the media of any phone number
        "StagedEumMedia": {"Sid": "StagedEumMedia", "Effect": "Allow", "Action": ["s3:DeleteObject", "s3:GetObject"],
                           "Resource": [f"arn:aws:s3:::{bucket}/{layout.MEDIA_STAGING_PREFIX}*"]},
        "GetEumMedia": {"Sid": "GetEumMedia", "Effect": "Allow", "Action": ["social-messaging:GetWhatsAppMessageMedia"],
                        "Resource": ["arn:aws:social-messaging:*:*:phone-number-id/*"]},
        "ReadMediaTokens": {"Sid": "ReadMediaTokens", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                            "Resource": sorted([*tokens, param_arn(f"/chatlake/{stage}/pii-salt")])},
        "OwnLogs": {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS,
                    "Resource": log_arns(f"chatlake-{stage}-media_capture")},
    }
    assert set(env) == {"WHATSAPP_ACCESS_TOKEN_PARAM", "TELEGRAM_BOT_TOKEN_PARAM"}


def test_the_etl_prefixes_in_the_policies_are_the_lake_layout():
    day = datetime(2026, 1, 2).date()
    assert layout.raw_prefix("telegram", day).startswith("raw/")
    assert layout.quarantine_prefix("whatsapp", day).startswith("quarantine/")
    assert layout.enriched_prefix("messages", day).startswith("enriched/")
    assert layout.commit_key(day).startswith("etl/") and layout.versions_key(day).startswith("etl/")


# --- secrets from SSM ---------------------------------------------------------------------------------------


class CountingSSM:
    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []
        self.exceptions = client.exceptions

    def get_parameter(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs["Name"])
        return self.client.get_parameter(**kwargs)


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_stage_secrets_resolve_from_ssm_once_per_cold_start(stage):
    env = stage_env(stage)
    values = {"TELEGRAM_SECRET_TOKEN": "tg-Secret_from_ssm", "WHATSAPP_VERIFY_TOKEN": "verify-from-ssm",
              "WHATSAPP_APP_SECRET": "app-secret-from-ssm"}
    with mock_aws():
        ssm = CountingSSM(boto3.client("ssm", region_name="us-east-1"))
        for name, value in values.items():
            ssm.client.put_parameter(Name=env[f"{name}_PARAM"], Value=value, Type="SecureString")
        for _ in range(3):  # three deliveries to one warm Lambda
            s = settings.load(env, ssm_client_factory=lambda: ssm)
            assert {name: s.require(name) for name in values} == values
            assert s.telegram_secret_token() == values["TELEGRAM_SECRET_TOKEN"]
        assert sorted(ssm.calls) == sorted(env[f"{n}_PARAM"] for n in values)  # one call per parameter
        settings.reset()  # a new cold start reads them again
        settings.load(env, ssm_client_factory=lambda: ssm).require("WHATSAPP_APP_SECRET")
        assert len(ssm.calls) == 4


def test_a_missing_stage_parameter_says_how_to_create_it():
    env = stage_env("dev")
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        expected = (r"SSM parameter '/chatlake/dev/whatsapp-app-secret' does not exist: "
                    r"create it as a SecureString \(aws ssm put-parameter --type SecureString")
        with pytest.raises(ConfigError, match=expected):
            settings.load(env, ssm_client_factory=lambda: client).require("WHATSAPP_APP_SECRET")


# --- the pyarrow layer --------------------------------------------------------------------------------------


def test_pyarrow_is_pinned_once_installed_and_named_by_every_stage_layer():
    pinned = pyarrow_layer.pinned_version((PROJECT_DIR / "requirements-dev.txt").read_text())
    assert pinned == pyarrow.__version__ == "20.0.0"
    lambda_requirements = (PROJECT_DIR / "requirements.txt").read_text()
    pins = [line for line in lambda_requirements.splitlines() if line and not line.startswith("#")]
    assert pins == ["orjson==3.13.0"]
    for stage in DEPLOYED_STAGES:
        (arn,) = CONFIG["stages"][stage]["lambda_functions"]["daily_etl"]["layers"]
        assert CONFIG["stages"][stage]["lambda_functions"]["intraday_etl"]["layers"] == [arn]
        assert CONFIG["stages"][stage]["lambda_functions"]["etl_share"]["layers"] == [arn]
        assert pyarrow_layer.layer_version_of(arn) == pinned, f"{stage}: {arn} is not pyarrow {pinned}: publish-layer"
        assert "layers" not in CONFIG["stages"][stage]["lambda_functions"]["api_handler"]


def test_the_layer_is_the_pinned_wheel_within_lambda_limits(layer):
    assert layer.pyarrow_version == pyarrow.__version__
    assert layer.path.name == "chatlake-pyarrow-20-0-0.zip"
    with zipfile.ZipFile(layer.path) as z:
        names = z.namelist()
    assert all(n.startswith(("python/pyarrow/", "python/pyarrow-20.0.0.dist-info/")) for n in names)
    assert "python/pyarrow/libparquet.so.2000" in names
    assert "python/pyarrow/_parquet.cpython-311-x86_64-linux-gnu.so" in names
    assert not any("/tests/" in n or "/include/" in n or n.endswith(".pyx") for n in names)
    assert layer.zipped_bytes < pyarrow_layer.MAX_ZIPPED_BYTES
    assert layer.unzipped_bytes < pyarrow_layer.MAX_UNZIPPED_BYTES


def unzip(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    for so in dest.rglob("*.so*"):
        so.chmod(0o755)
    return dest


def run_like_lambda(paths: list[Path], code: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`code` in a Python without site-packages, seeing only `paths` (/var/task, /opt/python): as Lambda does."""
    script = f"import sys, json\nsys.path[:0] = {[str(p) for p in paths]!r}\n{code}"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], env={"PATH": os.environ["PATH"], **env},
                            cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_both_packages_run_as_lambda_runs_them(package, layer, tmp_path):
    """The webhook package alone stores a delivery; with the layer, the scheduled ETL turns it into zstd Parquet."""
    task = unzip(package["zip"], tmp_path / "task")
    opt = unzip(layer.path, tmp_path / "opt") / "python"
    lake_dir = tmp_path / "lake"
    env = {"DATALAKE_URL": str(lake_dir), "TELEGRAM_SECRET_TOKEN": "tg-Secret_0123456789"}
    body = json.dumps({"update_id": 7, "message": {"message_id": 1, "from": {"id": 42, "first_name": "Ada"},
                                                   "chat": {"id": 42, "type": "private"}, "date": 1764000000,
                                                   "text": "hi"}})
    event = {"requestContext": {"httpMethod": "POST", "resourcePath": "/telegram", "path": "/telegram"},
             "headers": {"content-type": "application/json",
                         "x-telegram-bot-api-secret-token": env["TELEGRAM_SECRET_TOKEN"]},
             "pathParameters": None, "stageVariables": {}, "multiValueQueryStringParameters": None,
             "body": body, "isBase64Encoded": False}
    webhook = run_like_lambda([task], f"""
import app
reply = app.app({event!r}, None)
print(json.dumps({{"status": reply["statusCode"], "body": json.loads(reply["body"]),
                  "heavy": sorted(m for m in ("pyarrow", "boto3", "duckdb", "sqlglot") if m in sys.modules),
                  "orjson": sys.modules["orjson"].__file__}}))
""", env, tmp_path)
    assert webhook["status"] == 200 and webhook["heavy"] == []
    assert webhook["orjson"].startswith(str(task))  # the JSON check's orjson comes from the package itself
    stored = lake_dir / webhook["body"]["key"]
    assert stored.read_bytes() == body.encode()

    # the ETL processes yesterday: move the delivery there, as if it had arrived a day earlier
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    key = layout.raw_key("telegram", yesterday, body.encode())
    (lake_dir / key).parent.mkdir(parents=True, exist_ok=True)
    stored.rename(lake_dir / key)
    etl = run_like_lambda([task, opt], """
import app, types
scheduled = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "123456789012", "time": "2026-01-02T00:05:00Z", "region": "us-east-1",
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/chatlake-dev-daily_etl-event"], "detail": {}}
result = app.daily_etl(scheduled, types.SimpleNamespace(aws_request_id="r-1"))
import pyarrow
print(json.dumps({**result, "pyarrow": pyarrow.__version__, "pyarrow_from": pyarrow.__file__}))
""", env, tmp_path)
    [day] = etl["days"]  # the catch-up: yesterday is the only day of the window that is behind
    assert (day["day"], day["deliveries"], day["messages"], day["rejects"]) == (str(yesterday), 1, 1, 0)
    assert etl["pyarrow"] == "20.0.0" and etl["pyarrow_from"].startswith(str(opt))
    parquet = lake_dir / layout.enriched_prefix("messages", yesterday) / "part-0.parquet"
    meta = pq.ParquetFile(io.BytesIO(parquet.read_bytes())).metadata
    assert meta.num_rows == 1 and meta.row_group(0).column(0).compression == "ZSTD"


# --- publish-layer ------------------------------------------------------------------------------------------


def test_publish_layer_publishes_and_writes_the_arn_into_one_stage(tmp_path):
    small = tmp_path / "layer.zip"
    with zipfile.ZipFile(small, "w") as z:
        z.writestr("python/pyarrow/__init__.py", "")
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    out = io.StringIO()
    with mock_aws():
        code = pyarrow_layer.command(
            "dev", lambda: boto3.client("lambda", region_name="eu-west-1"), tmp_path, out=out, config_path=config_path,
            build_layer=lambda _: pyarrow_layer.LayerZip(small, "20.0.0", small.stat().st_size, 0))
        published = boto3.client("lambda", region_name="eu-west-1").list_layer_versions(
            LayerName="chatlake-pyarrow-20-0-0")["LayerVersions"]
    assert code == 0
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:chatlake-pyarrow-20-0-0:1"
    assert [(v["LayerVersionArn"], v["CompatibleRuntimes"], v["CompatibleArchitectures"]) for v in published] == [
        (arn, ["python3.11"], ["x86_64"])]
    new = json.loads(config_path.read_text())
    for function in ("daily_etl", "etl_share", "intraday_etl"):
        assert new["stages"]["dev"]["lambda_functions"][function]["layers"] == [arn]
        new["stages"]["dev"]["lambda_functions"][function]["layers"] = CONFIG["stages"]["dev"]["lambda_functions"][
            function]["layers"]
    assert new == CONFIG  # nothing else changed
    assert f"published {arn}" in out.getvalue()


def test_publish_layer_to_an_unknown_stage_fails_without_touching_the_config(tmp_path, capsys):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))
    small = tmp_path / "layer.zip"
    with zipfile.ZipFile(small, "w") as z:
        z.writestr("python/pyarrow/__init__.py", "")
    with mock_aws():
        code = pyarrow_layer.command(
            "staging", lambda: boto3.client("lambda", region_name="us-east-1"), tmp_path, out=io.StringIO(),
            config_path=config_path, build_layer=lambda _: pyarrow_layer.LayerZip(small, "20.0.0", 1, 0))
    assert code == 1
    assert capsys.readouterr().err == "error: no stage 'staging' in .chalice/config.json (stages: local, dev, prod)\n"
    assert json.loads(config_path.read_text()) == CONFIG


@pytest.mark.parametrize("text,version", [("pyarrow==20.0.0\n", "20.0.0"),
                                          ("duckdb==2.0.1\nPyArrow == 19.0.1  # x", "19.0.1")])
def test_pinned_version(text, version):
    assert pyarrow_layer.pinned_version(text) == version


def test_layer_names_round_trip():
    assert pyarrow_layer.layer_name("20.0.0") == "chatlake-pyarrow-20-0-0"
    assert pyarrow_layer.layer_version_of("arn:aws:lambda:us-east-1:1:layer:chatlake-pyarrow-20-0-0:3") == "20.0.0"
    managed = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:30"
    assert pyarrow_layer.layer_version_of(managed) is None


# --- chalicelib stands alone ---------------------------------------------------------------------------------------


def test_no_chalicelib_module_imports_the_tool():
    """What the functions import never pulls in `chatlake` (the tool people type, never packaged for Lambda)."""
    modules = sorted(f"chalicelib.{p.stem}" for p in (PROJECT_DIR / "chalicelib").glob("*.py") if p.stem != "__init__")
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'chatlake' or m.startswith('chatlake.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(modules) >= 10 and out.stdout.strip() == "[]"


def test_the_lambda_package_holds_no_chatlake(package):
    with zipfile.ZipFile(package["zip"]) as z:
        names = z.namelist()
    assert "app.py" in names and any(n.startswith("chalicelib/") for n in names)
    assert not [n for n in names if n.startswith("chatlake/") or n.startswith("chatlake-")]
