"""`chatlake deploy`, `doctor` and `destroy` against a moto server and a fake Telegram Bot API, both on 127.0.0.1.

Everything runs for real: the CLI, boto3 against the moto server (`AWS_ENDPOINT_URL`), and `chalice deploy` /
`chalice delete` as subprocesses against the same server. Where moto 5.2 stops, the smallest stub of only the
missing call is installed in the server, each named here:

- **ImportRestApi / PutRestApi** (API Gateway): moto imports only OpenAPI 3 and chalice sends Swagger 2.0, so the
  stub creates the REST API with chalice's paths and methods (`_import_swagger`). Everything chalice does before it
  (IAM roles, the Lambda functions with the layer and reserved concurrency, log retention) and after it (deployment,
  permissions, the EventBridge schedule) is moto's own.
- **GetAccountSettings** (Lambda): not in moto; the stub answers an account with the default quota of 1000.
- **UpdateNamedQuery / DeleteNamedQuery** (Athena): not in moto; the stubs change moto's stored named query.

The pyarrow layer is a small zip here (`steps.build_layer` is replaced): the real build from PyPI is tested in
`test_deploy.py`. Needs PyPI for orjson's Lambda wheel (chalice packages it), as `test_deploy.py` does.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from chatlake import cli
from chatlake.deploy import layer as pyarrow_layer
from chatlake.deploy import stage as st
from chatlake.deploy import steps as deploy_steps
from chatlake.deploy import telegram_api
from chatlake.local import fake_platforms
from tests.conftest import free_port

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
APP_SECRET = "0123456789abcdef0123456789abcdef"
ACCOUNT = "123456789012"
REGION = "eu-west-1"


# --- the moto server and its named stubs ----------------------------------------------------------------------


def _import_swagger(backend: Any, api: Any, api_doc: dict[str, Any]) -> Any:
    """Stub of ImportRestApi/PutRestApi for Swagger 2.0: chalice's paths and methods as moto resources."""
    for resource in [r for r in api.resources.values() if r.id != api.default.id]:
        api.resources.pop(resource.id)
    for path, methods in api_doc.get("paths", {}).items():
        parent = api.default
        for part in [p for p in path.split("/") if p]:
            found = [r for r in api.resources.values() if r.parent_id == parent.id and r.path_part == part]
            parent = found[0] if found else backend.create_resource(api.id, parent.id, part)
        for method, spec in methods.items():
            backend.put_method(api.id, parent.id, method.upper(), "NONE")
            integration = spec.get("x-amazon-apigateway-integration", {})
            backend.put_integration(api.id, parent.id, method.upper(), integration.get("type", "aws_proxy").upper(),
                                    str(integration.get("uri", "")), "POST")
    return api


def _install_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.apigateway.models import APIGatewayBackend
    from moto.athena.responses import AthenaResponse
    from moto.awslambda import urls as lambda_urls
    from moto.awslambda.responses import LambdaResponse

    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        api = self.create_rest_api(name=api_doc["info"]["title"], description=api_doc["info"].get("description", ""))
        return _import_swagger(self, api, api_doc)

    def put_rest_api(self: Any, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool,
                     mode: str = "merge") -> Any:
        return _import_swagger(self, self.get_rest_api(function_id), api_doc)

    def get_account_settings(self: Any) -> Any:
        limit = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}
        return 200, {}, json.dumps({"AccountLimit": limit, "AccountUsage": {}})

    def update_named_query(self: Any) -> str:
        query = self.athena_backend.named_queries[self._get_param("NamedQueryId")]
        query.name, query.query_string = self._get_param("Name"), self._get_param("QueryString")
        query.description = self._get_param("Description")
        return "{}"

    def delete_named_query(self: Any) -> str:
        self.athena_backend.named_queries.pop(self._get_param("NamedQueryId"), None)
        return "{}"

    monkeypatch.setattr(APIGatewayBackend, "import_rest_api", import_rest_api)
    monkeypatch.setattr(APIGatewayBackend, "put_rest_api", put_rest_api)
    monkeypatch.setattr(LambdaResponse, "get_account_settings", get_account_settings, raising=False)
    monkeypatch.setitem(lambda_urls.url_paths, r"{0}/(?P<api_version>[^/]+)/account-settings/?$",
                        LambdaResponse.dispatch)
    monkeypatch.setattr(AthenaResponse, "update_named_query", update_named_query, raising=False)
    monkeypatch.setattr(AthenaResponse, "delete_named_query", delete_named_query, raising=False)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    _install_stubs(monkeypatch)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    try:
        yield url
    finally:
        server.stop()


# --- a stateful fake Bot API ----------------------------------------------------------------------------------


@dataclass
class FakeTelegram:
    url: str = ""
    webhook: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            token, method = self.path.removeprefix("/bot").rsplit("/", 1)
            fake.calls.append((method, body))
            if token != BOT_TOKEN:
                status, reply = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            elif method == "setWebhook":
                fake.webhook = dict(body)
                status, reply = 200, {"ok": True, "result": True}
            elif method == "deleteWebhook":
                fake.webhook = {}
                status, reply = 200, {"ok": True, "result": True}
            elif method == "getWebhookInfo":
                info = {"url": fake.webhook.get("url", ""), "pending_update_count": 0}
                if fake.webhook.get("allowed_updates"):
                    info["allowed_updates"] = fake.webhook["allowed_updates"]
                status, reply = 200, {"ok": True, "result": info}
            else:
                status, reply = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            fake_platforms.FakeBotApi.reply_json(self, status, reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- every subprocess's argv and environment, recorded --------------------------------------------------------


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            seen.append(([str(x) for x in ([args] if isinstance(args, str | Path) else args)],
                         dict(kw.get("env") or {})))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return seen


@pytest.fixture
def aws(moto_server: str, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("TELEGRAM_API_URL", telegram.url)
    monkeypatch.setenv("WHATSAPP_APP_SECRET", APP_SECRET)  # read by --from-env
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setattr(st, "STATE_ROOT", tmp_path / ".deploy")

    def small_layer(ctx: Any, workdir: Path) -> pyarrow_layer.LayerZip:
        path = workdir / "layer.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("python/pyarrow/__init__.py", "")
        return pyarrow_layer.LayerZip(path, "20.0.0", path.stat().st_size, 0)

    monkeypatch.setattr(deploy_steps, "build_layer", small_layer)
    clients = {name: boto3.client(name, region_name=REGION) for name in
               ("s3", "ssm", "lambda", "logs", "apigateway", "athena")}
    return clients


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out + err


def secret_values(ssm: Any, stage: str) -> list[str]:
    names = [p["Name"] for p in ssm.get_parameters_by_path(Path=f"/chatlake/{stage}", Recursive=True)["Parameters"]]
    return [ssm.get_parameter(Name=n, WithDecryption=True)["Parameter"]["Value"] for n in names]


@pytest.mark.parametrize("stage", st.STAGES)
def test_deploy_plan_deploy_again_doctor_destroy(stage, aws, telegram, spawned, capsys, caplog, tmp_path,
                                                monkeypatch):
    # prod is given the media function's optional WhatsApp access token, dev is not
    wa_token = "EAAGm0PX4ZCpsBAMZ0dummyMediaToken0123456789" if stage == "prod" else None
    if wa_token:
        monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", wa_token)
    else:
        monkeypatch.delenv("WHATSAPP_ACCESS_TOKEN", raising=False)
    caplog.set_level(logging.INFO)  # botocore logs request parameters at DEBUG: its own debug mode, not ours
    caplog.set_level(logging.DEBUG, logger="chatlake")
    s3, ssm, lambda_, logs, apigateway, athena = (aws[n] for n in ("s3", "ssm", "lambda", "logs", "apigateway",
                                                                    "athena"))
    bucket = f"chatlake-{stage}-{ACCOUNT}-{REGION}"
    outputs = []

    # 1. the plan: everything is missing, and nothing is touched
    code, out = run(["deploy", "--stage", stage, "--dry-run", "--from-env"], capsys)
    outputs.append(out)
    assert code == 0, out
    assert f"bucket {bucket}" in out and f"create bucket {bucket} in {REGION}" in out
    assert f"put /chatlake/{stage}/whatsapp-app-secret (from the environment)" in out
    if wa_token:
        assert f"put /chatlake/{stage}/whatsapp-access-token (from the environment)" in out
    else:
        assert f"optional /chatlake/{stage}/whatsapp-access-token not set (WhatsApp webhook media" in out
    assert "publish pyarrow 20.0.0" in out and f"chalice deploy --stage {stage}" in out
    assert "planned; run without --dry-run" in out
    assert s3.list_buckets()["Buckets"] == []
    assert ssm.describe_parameters()["Parameters"] == []
    assert lambda_.list_layers()["Layers"] == [] and lambda_.list_functions()["Functions"] == []
    assert not (tmp_path / ".deploy").exists() and telegram.calls == [] and spawned == []

    # 2. the deploy
    code, out = run(["deploy", "--stage", stage, "--from-env"], capsys)
    outputs.append(out)
    assert code == 0, out
    versioning = s3.get_bucket_versioning(Bucket=bucket)["Status"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert versioning == "Enabled" and all(block.values())
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    params = {p["Name"]: p["Type"] for p in ssm.describe_parameters()["Parameters"]}
    leaves = ("telegram-secret-token", "whatsapp-verify-token", "whatsapp-app-secret", "telegram-bot-token",
              *(("whatsapp-access-token",) if wa_token else ()))
    assert params == {f"/chatlake/{stage}/{leaf}": "SecureString" for leaf in leaves}
    app_secret = ssm.get_parameter(Name=f"/chatlake/{stage}/whatsapp-app-secret", WithDecryption=True)
    assert app_secret["Parameter"]["Value"] == APP_SECRET

    # chalice deployed two functions with the stage's settings, the layer and the reserved concurrency
    api_fn = lambda_.get_function(FunctionName=f"chatlake-{stage}")
    etl_fn = lambda_.get_function(FunctionName=f"chatlake-{stage}-daily_etl")["Configuration"]
    env = api_fn["Configuration"]["Environment"]["Variables"]
    assert env["DATALAKE_URL"] == f"s3://{bucket}" and env["ATHENA_OUTPUT_URL"] == f"s3://{bucket}/athena-results/"
    assert env["TELEGRAM_SECRET_TOKEN_PARAM"] == f"/chatlake/{stage}/telegram-secret-token"
    (layer_version,) = lambda_.list_layer_versions(LayerName="chatlake-pyarrow-20-0-0")["LayerVersions"]
    assert [x["Arn"] for x in etl_fn["Layers"]] == [layer_version["LayerVersionArn"]]
    assert api_fn["Concurrency"]["ReservedConcurrentExecutions"] == 20
    # the rendered project holds the real bucket in its policies; the tracked templates are untouched
    rendered = tmp_path / ".deploy" / stage / "project" / ".chalice"
    assert bucket in (rendered / f"policy-api-{stage}.json").read_text()
    tracked = (st.PROJECT_DIR / ".chalice" / "config.json").read_text()
    assert bucket not in tracked and st.placeholder_bucket(stage) in tracked

    retention = {g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]}
    assert retention == {f"/aws/lambda/chatlake-{stage}": 30, f"/aws/lambda/chatlake-{stage}-daily_etl": 30,
                         f"/aws/lambda/chatlake-{stage}-etl_share": 30,
                         f"/aws/lambda/chatlake-{stage}-intraday_etl": 30,
                         f"/aws/lambda/chatlake-{stage}-media_capture": 30}
    (api,) = apigateway.get_rest_apis()["items"]
    settings = apigateway.get_stage(restApiId=api["id"], stageName="api")["methodSettings"]["*/*"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (50.0, 100)

    database = "chatlake_dev" if stage == "dev" else "chatlake"
    assert athena.get_database(CatalogName="AwsDataCatalog", DatabaseName=database)["Database"]["Name"] == database
    ids = athena.list_named_queries(WorkGroup="primary")["NamedQueryIds"]
    saved = {q["Name"]: q for q in (athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids)}
    pack = sorted(p.stem for p in (st.PROJECT_DIR / "sql" / "analytics").glob("*.sql"))
    assert sorted(saved) == pack and all(q["Database"] == database for q in saved.values())
    top = (st.PROJECT_DIR / "sql" / "analytics" / "top_chats.sql").read_text()
    assert saved["top_chats"]["QueryString"] == top.strip() + "\n"

    url = f"https://{api['id']}.execute-api.{REGION}.amazonaws.com/api"
    secret = ssm.get_parameter(Name=f"/chatlake/{stage}/telegram-secret-token", WithDecryption=True)
    assert telegram.webhook == {"url": f"{url}/telegram", "secret_token": secret["Parameter"]["Value"],
                                "allowed_updates": list(telegram_api.ALLOWED_UPDATES), "drop_pending_updates": False}
    assert f"callback URL:  {url}/whatsapp" in out
    assert f"aws ssm get-parameter --with-decryption --name /chatlake/{stage}/whatsapp-verify-token" in out
    assert [argv[2:] for argv, _ in spawned] == [[str(tmp_path / ".deploy" / stage / "project"), "deploy",
                                                   "--stage", stage]]

    # 3. again: every step finds its work done; chalice is not even started
    calls_before = len(telegram.calls)
    code, out = run(["deploy", "--stage", stage, "--from-env"], capsys)
    outputs.append(out)
    assert code == 0, out
    assert "nothing needed changing" in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith(("do ", "plan"))] == []
    assert len(spawned) == 1
    assert [m for m, _ in telegram.calls[calls_before:]] == ["getWebhookInfo"]
    # a changed analytics query is updated in place (same id) by the next run
    query_id = saved["top_chats"]["NamedQueryId"]
    athena.update_named_query(NamedQueryId=query_id, Name="top_chats", Description=saved["top_chats"]["Description"],
                              QueryString="SELECT 1")
    code, out = run(["deploy", "--stage", stage, "--dry-run"], capsys)
    outputs.append(out)
    assert "update named query top_chats in place" in out and "1 change(s) planned" in out
    run(["deploy", "--stage", stage], capsys)
    assert athena.get_named_query(NamedQueryId=query_id)["NamedQuery"]["QueryString"] == top.strip() + "\n"

    # 4. doctor: all good but the ETL, which has not run (the lake is empty: nothing to process)
    code, out = run(["doctor", "--stage", stage], capsys)
    outputs.append(out)
    assert code == 0, out
    assert "ok   bucket: s3://" in out and "ok   telegram: webhook" in out and "all good" in out
    telegram.webhook = {}  # someone removed the webhook: doctor says so and how to fix it
    code, out = run(["doctor", "--stage", stage], capsys)
    outputs.append(out)
    assert code == 1 and "FAIL telegram" in out and f"fix: chatlake deploy --stage {stage}" in out
    run(["deploy", "--stage", stage], capsys)
    assert telegram.webhook["url"] == f"{url}/telegram"

    # no secret in any subprocess's argv or environment, in any output, or in a log record
    values = secret_values(ssm, stage)
    assert len(values) == len(leaves) and (wa_token is None or wa_token in values)
    for argv, environ in spawned:
        for value in values:
            assert not any(value in arg for arg in argv)
            assert not any(value in v for v in environ.values())
    for text in [*outputs, caplog.text]:
        for value in values:
            assert value not in text

    # 5. destroy, keeping the data for prod; dev's bucket goes, after saying what it holds
    s3.put_object(Bucket=bucket, Key="raw/source=telegram/dt=2026-01-01/x.json", Body=b"{}")
    keep = stage == "prod"
    code, out = run(["destroy", "--stage", stage, *(["--keep-data"] if keep else ["--delete-bucket", bucket])],
                    capsys)
    outputs.append(out)
    assert code == 0, out
    assert f"s3://{bucket} holds 1 objects (1 stored versions)" in out
    assert telegram.webhook == {}
    assert lambda_.list_functions()["Functions"] == [] and lambda_.list_layers()["Layers"] == []
    assert apigateway.get_rest_apis()["items"] == []
    assert ssm.describe_parameters()["Parameters"] == []
    assert logs.describe_log_groups()["logGroups"] == []
    assert athena.list_named_queries(WorkGroup="primary")["NamedQueryIds"] == []
    assert [argv[3:] for argv, _ in spawned][-1] == ["delete", "--stage", stage]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert buckets == ([bucket] if keep else [])
    with pytest.raises(Exception, match="Database"):
        athena.get_database(CatalogName="AwsDataCatalog", DatabaseName=database)
    # a second destroy of a stage whose bucket was kept finds nothing left to remove
    if keep:
        code, out = run(["destroy", "--stage", stage, "--keep-data"], capsys)
        assert code == 0 and "do  " not in out
    else:
        code, out = run(["destroy", "--stage", stage], capsys)
        assert code == 1 and "was never deployed" in out
    for text in [*outputs, caplog.text]:
        for value in values:
            assert value not in text


def test_destroy_without_confirmation_keeps_the_bucket(aws, capsys, tmp_path):
    bucket = f"chatlake-dev-{ACCOUNT}-{REGION}"
    st.save_state(st.paths("dev", tmp_path / ".deploy"), st.StageState("dev", REGION, ACCOUNT, bucket))
    aws["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    code, out = run(["destroy", "--stage", "dev"], capsys)  # stdin is not a terminal: nobody to ask
    assert code == 0
    assert f"kept s3://{bucket} (not confirmed)" in out and f"--delete-bucket {bucket}" in out
    assert [b["Name"] for b in aws["s3"].list_buckets()["Buckets"]] == [bucket]


def test_from_env_without_the_secret_stores_nothing(aws, monkeypatch, capsys):
    monkeypatch.delenv("WHATSAPP_APP_SECRET")
    code, out = run(["deploy", "--stage", "dev", "--from-env"], capsys)
    assert code == 1
    assert "--from-env: WHATSAPP_APP_SECRET is not set in the environment" in out
    assert aws["ssm"].describe_parameters()["Parameters"] == []
    assert BOT_TOKEN not in out


def test_secrets_are_asked_without_echo(aws, monkeypatch, capsys):
    """Without --from-env, deploy asks through getpass; a malformed answer is refused and nothing is stored."""
    import getpass

    prompts = []
    answers = {"Meta App Secret (App settings > Basic): ": APP_SECRET,
               "Telegram bot token from @BotFather: ": "not-a-token"}
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or answers[prompt])
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    code, out = run(["deploy", "--stage", "dev"], capsys)
    assert code == 1 and prompts == list(answers)
    assert "TELEGRAM_BOT_TOKEN does not look right" in out and "not-a-token" not in out
    assert aws["ssm"].describe_parameters()["Parameters"] == []


def test_pip_builds_the_layer_without_any_secret_in_its_environment(monkeypatch, tmp_path):
    """The real layer build's one subprocess (pip download) gets deploy's secret-free environment."""
    from chalicelib import settings
    from chatlake.deploy.plan import Context

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("WHATSAPP_APP_SECRET", APP_SECRET)
    calls = []

    def fake_pip(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append((cmd, kw["env"]))
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "pyarrow-20.0.0-cp311-cp311-manylinux2014_x86_64.whl", "w") as z:
            z.writestr("pyarrow/__init__.py", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    state = st.StageState("dev", REGION, ACCOUNT, "b")
    ctx = Context("dev", state, st.paths("dev", tmp_path), None, settings.load({}), run=fake_pip)  # type: ignore[arg-type]
    built = deploy_steps.build_layer(ctx, tmp_path)
    assert built.pyarrow_version == "20.0.0"
    [(cmd, env)] = calls
    assert "pyarrow==20.0.0" in cmd and env["AWS_DEFAULT_REGION"] == REGION
    assert "TELEGRAM_BOT_TOKEN" not in env and "WHATSAPP_APP_SECRET" not in env
    assert not any(BOT_TOKEN in v or APP_SECRET in v for v in [*cmd, *env.values()])


@pytest.mark.parametrize("topic", [None, "chatlake-whatsapp-events"])
def test_the_eum_function_is_checked_logged_and_removed_when_the_stage_names_a_topic(aws, topic, tmp_path):
    """deploy's log retention and doctor know `chatlake-<stage>-whatsapp_eum` exactly when the stage's config sets
    WHATSAPP_EUM_TOPIC (chalice deploys it then); destroy removes its log group whatever the config says now."""
    from chalicelib import settings
    from chatlake.deploy import doctor, teardown
    from chatlake.deploy.plan import Clients, Context

    config = st.template_config()
    if topic:
        config["stages"]["dev"]["environment_variables"]["WHATSAPP_EUM_TOPIC"] = topic
    (tmp_path / "project" / ".chalice").mkdir(parents=True)
    (tmp_path / "project" / ".chalice" / "config.json").write_text(json.dumps(config))
    bucket = f"chatlake-dev-{ACCOUNT}-{REGION}"
    ctx = Context("dev", st.StageState("dev", REGION, ACCOUNT, bucket), st.paths("dev", tmp_path / ".deploy"),
                  Clients(boto3.session.Session(region_name=REGION)), settings.load({}),
                  project_dir=tmp_path / "project")
    group = "/aws/lambda/chatlake-dev-whatsapp_eum"

    planned = deploy_steps.LogRetention().check(ctx).actions
    assert (f"create {group}, keep 30 days" in planned) == bool(topic)
    assert "create /aws/lambda/chatlake-dev-intraday_etl, keep 30 days" in planned
    found = {f.check: f for f in doctor.checks(ctx, datetime.now(UTC))}
    assert ("function whatsapp_eum" in found) == bool(topic)
    if topic:  # not deployed here: doctor says so and how to fix it
        eum = found["function whatsapp_eum"]
        assert not eum.ok and "chatlake-dev-whatsapp_eum" in eum.detail and eum.fix == "chatlake deploy --stage dev"

    aws["logs"].create_log_group(logGroupName=group)  # deployed while the config named a topic
    change = teardown.LogsOff().check(ctx)
    assert f"delete {group}" in change.actions
    teardown.LogsOff().apply(ctx, change)
    assert aws["logs"].describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
