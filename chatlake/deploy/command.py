"""`chatlake deploy` and `chatlake destroy`: open the stage (this account's answers), run the steps, report.

The CLI hands in `make_clients(region) -> (Clients, region)`, built from one boto3 session, so nothing here
builds an AWS client and the tests point everything at a moto server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from chalicelib.settings import Settings
from chatlake.deploy import stage as st
from chatlake.deploy import steps as deploy_steps
from chatlake.deploy import teardown
from chatlake.deploy.plan import Clients, Context, Options, run_steps

MakeClients = Callable[[str | None], tuple[Clients, str | None]]


def _account(clients: Clients) -> str:
    try:
        return clients.sts.get_caller_identity()["Account"]
    except Exception as e:
        raise st.DeployError(f"no usable AWS credentials ({type(e).__name__}): sign in first (aws configure, or "
                             "aws sso login), check with aws sts get-caller-identity") from None


def open_stage(stage: str, make_clients: MakeClients, region: str | None, bucket: str | None,
               state_root: Path | None, create: bool) -> tuple[st.StageState, Clients, st.StagePaths]:
    """The stage's recorded answers (or new ones, when `create`), and clients in its region."""
    p = st.paths(stage, state_root or st.STATE_ROOT)
    state = st.load_state(p)
    if state and region and region != state.region:
        raise st.DeployError(f"stage {stage} is deployed in {state.region}, not {region}: run chatlake destroy "
                             f"--stage {stage} first to move it")
    if state and bucket and bucket != state.bucket:
        raise st.DeployError(f"stage {stage} uses bucket {state.bucket}, not {bucket}: run chatlake destroy "
                             f"--stage {stage} first to change it")
    clients, session_region = make_clients(state.region if state else region)
    account = _account(clients)
    if state:
        if state.account != account:
            raise st.DeployError(f"stage {stage} was deployed to AWS account {state.account}, but these credentials "
                                 f"are account {account}: sign in to {state.account}")
        return state, clients, p
    if not create:
        raise st.DeployError(f"stage {stage} was never deployed from this checkout ({p.state_file} is missing): "
                             f"chatlake deploy --stage {stage}")
    region = region or session_region
    if not region:
        raise st.DeployError("no AWS region: pass --region, or set AWS_DEFAULT_REGION (or a region in your profile)")
    name = st.check_bucket_name(bucket or st.default_bucket(stage, account, region))
    return st.StageState(stage, region, account, name), clients, p


def deploy(stage: str, make_clients: MakeClients, settings: Settings, *, region: str | None = None,
           bucket: str | None = None, dry_run: bool = False, options: Options | None = None,
           state_root: Path | None = None, out: TextIO | None = None, show_secrets: bool | None = None,
           **context: Any) -> int:
    out = out or sys.stdout
    state, clients, p = open_stage(stage, make_clients, region, bucket, state_root, create=True)
    ctx = Context(stage, state, p, clients, settings, options or Options(), out, dry_run=dry_run, **context)
    what = "plan (nothing is changed)" if dry_run else "deploy"
    print(f"chatlake {what}: stage {stage}, account {state.account}, region {state.region}, "
          f"bucket {state.bucket}", file=out)
    ctx.save()  # the answers first: a deploy that stops anywhere resumes with the same bucket
    changes = run_steps(deploy_steps.DEPLOY_STEPS, ctx)
    pending = sum(len(c.actions) for c in changes)
    if dry_run:
        print(f"\n{pending} change(s) planned; run without --dry-run to apply them" if pending
              else "\nnothing to change: the stage is up to date", file=out)
    else:
        print("\ndeployed: " + (f"{pending} change(s) applied" if pending else "nothing needed changing"), file=out)
        deploy_steps.print_meta_step(ctx, out.isatty() if show_secrets is None else show_secrets)
    for note in ctx.notes:
        print(f"note: {note}", file=out)
    return 0


def destroy(stage: str, make_clients: MakeClients, settings: Settings, *, keep_data: bool = False,
            delete_bucket: str | None = None, dry_run: bool = False, state_root: Path | None = None,
            out: TextIO | None = None, **context: Any) -> int:
    out = out or sys.stdout
    state, clients, p = open_stage(stage, make_clients, None, None, state_root, create=False)
    ctx = Context(stage, state, p, clients, settings, Options(), out, dry_run=dry_run, **context)
    print(f"chatlake destroy{' (plan only)' if dry_run else ''}: stage {stage}, account {state.account}, "
          f"region {state.region}", file=out)
    changes = run_steps(teardown.destroy_steps(keep_data, delete_bucket), ctx)
    if not dry_run:
        teardown.forget_stage(ctx)
    for note in ctx.notes:
        print(f"note: {note}", file=out)
    pending = sum(len(c.actions) for c in changes)
    print(f"\n{pending} change(s) planned" if dry_run else f"\nstage {stage} destroyed", file=out)
    return 0
