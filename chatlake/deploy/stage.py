"""A deployed stage's settings: the tracked templates plus this account's answers, rendered out of git.

The tracked `.chalice/config.json` and `.chalice/policy-*-<stage>.json` stay templates: they name the bucket
`chatlake-<stage>-replace-me` and a placeholder layer ARN, and tests check their shape. What only one AWS account
knows (bucket, region, account id, the layer it published, the webhook's reserved concurrency) is recorded in
`.deploy/<stage>/stage.json`, and `deploy` renders a complete chalice project from both into
`.deploy/<stage>/project/` (git-ignored), where `chalice deploy` runs and keeps its `deployed/<stage>.json`.
So nobody edits a tracked file by hand, a clone of the repository deploys to any account, and the rendered files
can always be thrown away and rendered again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatlake import PROJECT_DIR

STAGES = ("dev", "prod")
STATE_ROOT = PROJECT_DIR / ".deploy"
API_FUNCTION, ETL_FUNCTION = "api_handler", "daily_etl"
MEDIA_FUNCTION = "media_capture"
INTRADAY_FUNCTION = "intraday_etl"
SHARE_FUNCTION = "etl_share"  # the fanned-out day's workers (chalicelib/fanout.py), invoked by daily_etl
PYARROW_FUNCTIONS = (ETL_FUNCTION, SHARE_FUNCTION, INTRADAY_FUNCTION, MEDIA_FUNCTION)  # each gets the pyarrow layer
EUM_FUNCTION = "whatsapp_eum"  # only when the stage names WHATSAPP_EUM_TOPIC (app.py declares it then)
#: What `chalice deploy` packages, copied into the rendered project.
PROJECT_FILES = ("app.py", "requirements.txt")
PROJECT_DIRS = ("chalicelib",)
API_STAGE_NAME = "api"
ATHENA_RESULTS = "athena-results/"
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class DeployError(Exception):
    """A deploy, destroy or doctor step could not be done; the message says why and what to do (exit 1)."""


def placeholder_bucket(stage: str) -> str:
    """The bucket name the tracked templates use for `stage`."""
    return f"chatlake-{stage}-replace-me"


def default_bucket(stage: str, account: str, region: str) -> str:
    """Bucket names are global: the account and region make ours unique without asking."""
    return f"chatlake-{stage}-{account}-{region}"


def check_bucket_name(name: str) -> str:
    if not BUCKET_RE.fullmatch(name) or ".." in name:
        raise DeployError(f"{name!r} is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '.' and '-')")
    return name


def function_names(stage: str, eum: bool = False) -> dict[str, str]:
    """The Lambda function names chalice gives each function of `stage` (with `eum`: the End User Messaging
    Social function too, which exists only when the stage sets WHATSAPP_EUM_TOPIC: `has_eum`)."""
    names = {API_FUNCTION: f"chatlake-{stage}", **{f: f"chatlake-{stage}-{f}" for f in PYARROW_FUNCTIONS}}
    if eum:
        names[EUM_FUNCTION] = f"chatlake-{stage}-{EUM_FUNCTION}"
    return names


def has_eum(config: dict[str, Any], stage: str) -> bool:
    """Whether the stage's config names an End User Messaging Social topic, so that chalice deploys its function."""
    return bool(stage_environment(config, stage).get("WHATSAPP_EUM_TOPIC"))


def parameter_prefix(stage: str) -> str:
    return f"/chatlake/{stage}/"


@dataclass
class StageState:
    """This account's answers for one stage, and what was last applied (kept in `.deploy/<stage>/stage.json`)."""

    stage: str
    region: str
    account: str
    bucket: str
    layer_arn: str | None = None
    reserved_concurrency: int | None = None
    applied: dict[str, str] = field(default_factory=dict)  # step -> fingerprint of what it last applied

    @property
    def datalake_url(self) -> str:
        return f"s3://{self.bucket}"


@dataclass(frozen=True)
class StagePaths:
    root: Path  # .deploy/<stage>

    @property
    def state_file(self) -> Path:
        return self.root / "stage.json"

    @property
    def project(self) -> Path:
        return self.root / "project"

    def deployed_file(self, stage: str) -> Path:
        return self.project / ".chalice" / "deployed" / f"{stage}.json"


def paths(stage: str, state_root: Path = STATE_ROOT) -> StagePaths:
    return StagePaths(state_root / stage)


def load_state(p: StagePaths) -> StageState | None:
    if not p.state_file.is_file():
        return None
    data = json.loads(p.state_file.read_text())
    return StageState(**data)


def save_state(p: StagePaths, state: StageState) -> None:
    p.root.mkdir(parents=True, exist_ok=True)
    tmp = p.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(p.state_file)


def template_config(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    return json.loads((project_dir / ".chalice" / "config.json").read_text())


def stage_block(config: dict[str, Any], stage: str) -> dict[str, Any]:
    if stage not in config.get("stages", {}):
        raise DeployError(f"no stage {stage!r} in .chalice/config.json (stages: {', '.join(config.get('stages', {}))})")
    return config["stages"][stage]


def stage_environment(config: dict[str, Any], stage: str) -> dict[str, str]:
    return dict(stage_block(config, stage).get("environment_variables", {}))


def log_retention_days(config: dict[str, Any]) -> int:
    """One number for both functions' logs: the one the tracked config gives the ETL."""
    return int(config.get("lambda_functions", {}).get(ETL_FUNCTION, {}).get("log_retention_in_days", 30))


def _substitute(value: Any, old: str, new: str) -> Any:
    """`value` (parsed JSON) with `old` replaced by `new` in every string."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_substitute(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, old, new) for k, v in value.items()}
    return value


def render_files(state: StageState, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The rendered `.chalice/` files of the stage (path relative to the project -> text)."""
    config = template_config(project_dir)
    block = stage_block(config, state.stage)
    old = placeholder_bucket(state.stage)
    rendered = _substitute(config, old, state.bucket)
    block = rendered["stages"][state.stage]
    env = block.setdefault("environment_variables", {})
    env["DATALAKE_URL"] = state.datalake_url
    env["ATHENA_OUTPUT_URL"] = f"{state.datalake_url}/{ATHENA_RESULTS}"
    functions = block.setdefault("lambda_functions", {})
    if state.layer_arn:
        for name in PYARROW_FUNCTIONS:
            functions.setdefault(name, {})["layers"] = [state.layer_arn]
    api = functions.setdefault(API_FUNCTION, {})
    if state.reserved_concurrency is not None:
        api["reserved_concurrency"] = state.reserved_concurrency
    # chalice only reads the stage it deploys; the others would be templates with placeholders
    rendered["stages"] = {state.stage: block}
    files = {".chalice/config.json": json.dumps(rendered, indent=2) + "\n"}
    for fn in functions.values():
        name = fn.get("iam_policy_file")
        if name:
            policy = json.loads((project_dir / ".chalice" / name).read_text())
            files[f".chalice/{name}"] = json.dumps(_substitute(policy, old, state.bucket), indent=2) + "\n"
    return files


def _source_files(project_dir: Path) -> dict[str, bytes]:
    files = {name: (project_dir / name).read_bytes() for name in PROJECT_FILES}
    for folder in PROJECT_DIRS:
        for path in sorted((project_dir / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[str(path.relative_to(project_dir))] = path.read_bytes()
    return files


def project_files(state: StageState, project_dir: Path = PROJECT_DIR) -> dict[str, bytes]:
    """Everything the rendered chalice project holds, by relative path."""
    files = _source_files(project_dir)
    files.update({k: v.encode() for k, v in render_files(state, project_dir).items()})
    return files


def fingerprint(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def differences(target: Path, files: dict[str, bytes]) -> list[str]:
    """The relative paths whose content at `target` is not `files` (missing, changed, or left over)."""
    changed = [name for name, data in files.items()
               if not (target / name).is_file() or (target / name).read_bytes() != data]
    for folder in PROJECT_DIRS:
        if (target / folder).is_dir():
            changed += [str(p.relative_to(target)) for p in (target / folder).rglob("*")
                        if p.is_file() and str(p.relative_to(target)) not in files and p.suffix != ".pyc"]
    return sorted(changed)


def write_project(target: Path, files: dict[str, bytes]) -> None:
    """Make `target` hold exactly `files` (chalice's own `.chalice/deployed` and `deployments` are kept)."""
    for folder in PROJECT_DIRS:
        shutil.rmtree(target / folder, ignore_errors=True)
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def deployed_resources(p: StagePaths, stage: str) -> dict[str, dict[str, Any]]:
    """chalice's record of what it deployed for `stage`, by resource name (empty when nothing is deployed)."""
    path = p.deployed_file(stage)
    if not path.is_file():
        return {}
    return {r["name"]: r for r in json.loads(path.read_text()).get("resources", [])}


def api_url(p: StagePaths, stage: str) -> str | None:
    """The deployed REST API's base URL, without the trailing slash."""
    api = deployed_resources(p, stage).get("rest_api")
    return api["rest_api_url"].rstrip("/") if api and api.get("rest_api_url") else None
