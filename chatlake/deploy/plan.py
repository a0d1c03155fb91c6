"""Deploy and destroy as a list of small steps: each checks what exists, says what it would change, then does it.

A step only acts on what its check found missing or different, so a run that failed half way is resumed by
running the command again, and a second run with nothing to do changes nothing. `--dry-run` runs only the checks
(read-only AWS calls) and prints the plan. Steps receive their AWS clients in `Context.clients`, built once from
one boto3 session by the CLI, so the tests drive them against a moto server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TextIO

from chalicelib.settings import SECRETS, Settings
from chatlake.deploy.stage import DeployError, StagePaths, StageState, save_state


class Clients:
    """The AWS clients the steps use, all from one session (one region, one set of credentials), each built on
    first use: `doctor` never pays for the clients only `deploy` needs."""

    SERVICES: ClassVar[dict[str, str]] = {"s3": "s3", "ssm": "ssm", "lambda_": "lambda", "logs": "logs",
                                          "apigateway": "apigateway", "athena": "athena", "sts": "sts"}

    def __init__(self, session: Any) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_session(cls, session: Any) -> Clients:
        return cls(session)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.SERVICES:
            raise AttributeError(name)
        if name not in self._clients:
            from botocore.config import Config

            config = Config(retries={"max_attempts": 8, "mode": "adaptive"})
            self._clients[name] = self._session.client(self.SERVICES[name], config=config)
        return self._clients[name]


@dataclass
class Options:
    """What the person running `deploy` chose, with the defaults that protect the bill."""

    #: API Gateway stage throttling: steady requests per second and burst. WhatsApp and Telegram deliver far
    #: less for a small company; a flood of forged requests is refused by API Gateway before Lambda is billed.
    rate_limit: float = 50.0
    burst_limit: int = 100
    #: At most this many webhook invocations at once (Lambda's reserved concurrency).
    reserved_concurrency: int = 20
    from_env: bool = False


@dataclass
class Change:
    """What one step found, and what it would do (nothing when `actions` is empty)."""

    step: str
    exists: str
    actions: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # what the check learnt, for apply

    @property
    def up_to_date(self) -> bool:
        return not self.actions


@dataclass
class Context:
    stage: str
    state: StageState
    paths: StagePaths
    clients: Clients
    settings: Settings
    options: Options = field(default_factory=Options)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    project_dir: Path | None = None
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    ask_secret: Callable[[Any], str] | None = None  # (secrets.Parameter) -> value
    confirm: Callable[[str], str] | None = None  # `input`, for destroy's question about the bucket
    build_layer: Callable[[Any, Path], Any] | None = None  # (Context, workdir) -> layer.LayerZip
    dry_run: bool = False
    created_parameters: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # printed at the end

    def save(self) -> None:
        if not self.dry_run:
            save_state(self.paths, self.state)

    def subprocess_env(self) -> dict[str, str]:
        """The environment of a subprocess: ours, with the region and without any secret setting."""
        secret_names = {*SECRETS, *(f"{n}_PARAM" for n in SECRETS)}
        env = {k: v for k, v in os.environ.items() if k not in secret_names}
        env["AWS_DEFAULT_REGION"] = self.state.region
        env.pop("AWS_REGION", None)
        return env


class Step(Protocol):
    name: str

    def check(self, ctx: Context) -> Change: ...

    def apply(self, ctx: Context, change: Change) -> None: ...


def run_steps(steps: Sequence[Step], ctx: Context) -> list[Change]:
    """Check each step just before applying it (earlier steps change what later ones find); in a dry run, only
    check. Prints one line per step and one per action."""
    changes = []
    for step in steps:
        change = step.check(ctx)
        changes.append(change)
        mark = "ok  " if change.up_to_date else ("plan" if ctx.dry_run else "do  ")
        print(f"{mark} {change.step}: {change.exists}", file=ctx.out)
        for action in change.actions:
            print(f"       - {action}", file=ctx.out)
        if change.actions and not ctx.dry_run:
            try:
                step.apply(ctx, change)
            except DeployError:
                raise
            except Exception as e:  # botocore's ClientError and friends: say which step, keep the message
                raise DeployError(f"{change.step}: {_message(e)}") from None
            ctx.save()
    return changes


def _message(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        err = response["Error"]
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip()
    return str(e) or type(e).__name__


def error_code(e: Exception) -> str:
    response = getattr(e, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
