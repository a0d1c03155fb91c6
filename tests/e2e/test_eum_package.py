"""What `chalice package` makes of the End User Messaging Social function: an SNS subscription, a permission and a
role that may only add raw objects when the stage names the topic; nothing at all when it does not."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.e2e.test_deploy import (
    AWS_ENV,
    CHALICE,
    LOG_ACTIONS,
    bucket_of,
    copy_project,
    functions,
    log_arns,
    package,  # noqa: F401  (the fixture: `chalice package --stage dev` of the tracked config, no topic)
    policy,
    statements,
)

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:chatlake-whatsapp-events"


def _package(root, topic: str) -> dict[str, Any]:
    project = copy_project(root / "project")
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["stages"]["dev"]["environment_variables"]["WHATSAPP_EUM_TOPIC"] = topic
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATALAKE_", "TELEGRAM_", "WHATSAPP_"))}
    result = subprocess.run([str(CHALICE), "package", "--stage", "dev", str(root / "out")], cwd=project,
                            env={**env, **AWS_ENV}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((root / "out" / "sam.json").read_text())


@pytest.fixture(scope="module")
def sam_with_topic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _package(tmp_path_factory.mktemp("eum-arn"), TOPIC_ARN)


def test_no_topic_no_function_and_no_subscription(package):  # noqa: F811
    sam = package["sam"]
    assert "WhatsappEum" not in functions(sam)
    assert not [k for k in sam["Resources"] if "WhatsappEum" in k]  # no function, role, subscription or permission
    assert "sns" not in json.dumps(sam).lower()


def test_a_topic_arn_gives_the_function_its_subscription_and_only_raw_writes(sam_with_topic):
    fns = functions(sam_with_topic)
    assert set(fns) == {"APIHandler", "DailyEtl", "EtlShare", "IntradayEtl", "MediaCapture", "WhatsappEum"}
    fn = fns["WhatsappEum"]
    assert (fn["Handler"], fn["MemorySize"], fn["Timeout"]) == ("app.whatsapp_eum", 256, 10)
    assert "Layers" not in fn  # no pyarrow on this path
    assert fn["Events"] == {"WhatsappEumSnsSubscription": {"Type": "SNS", "Properties": {"Topic": TOPIC_ARN}}}
    resources = sam_with_topic["Resources"]
    assert fn["Role"] == {"Fn::GetAtt": ["WhatsappEumRole", "Arn"]}
    [doc] = [p["PolicyDocument"] for p in resources["WhatsappEumRole"]["Properties"]["Policies"]]
    assert doc == policy("dev", "whatsapp_eum")
    assert fn["Environment"]["Variables"]["WHATSAPP_EUM_TOPIC"] == TOPIC_ARN


def test_a_topic_name_is_resolved_in_the_stacks_account_and_region(tmp_path):
    sam = _package(tmp_path, "chatlake-whatsapp-events")
    events = functions(sam)["WhatsappEum"]["Events"]["WhatsappEumSnsSubscription"]["Properties"]
    assert events == {"Topic": {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:"
                                           "chatlake-whatsapp-events"}}


@pytest.mark.parametrize("stage", ("dev", "prod"))
def test_the_sns_function_may_only_add_raw_objects(stage):
    bucket = bucket_of(stage)
    assert statements(policy(stage, "whatsapp_eum")) == {
        "WriteRawOnly": {"Sid": "WriteRawOnly", "Effect": "Allow", "Action": ["s3:PutObject"],
                         "Resource": [f"arn:aws:s3:::{bucket}/raw/*"]},
        "OwnLogs": {"Sid": "OwnLogs", "Effect": "Allow", "Action": LOG_ACTIONS,
                    "Resource": log_arns(f"chatlake-{stage}-whatsapp_eum")},
    }
