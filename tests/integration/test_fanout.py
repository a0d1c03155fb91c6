"""A fanned-out full run (N workers by raw-key prefix, then a merge) writes the day's files byte for byte as a
single full run does."""

from __future__ import annotations

import json

import pytest

from chalicelib import etl, fanout, layout
from chalicelib.storage import FolderStorage
from chatlake.local import synthetic
from tests.conftest import keys
from tests.integration.test_exactly_once import D1, tg_message


def outputs(storage, day):
    names = [layout.part_key(t, day) for t in layout.TABLES] + [layout.versions_key(day), layout.mentions_key(day)]
    return {k: storage.get(k) for k in names}


@pytest.mark.parametrize("salt", [None, "pepper"])
def test_four_workers_and_a_merge_write_the_files_of_one_full_run(tmp_path, salt):
    batch = synthetic.deliveries(400, seed=5, day=D1)
    single, fanned = FolderStorage(tmp_path / "single"), FolderStorage(tmp_path / "fanned")
    for lake in (single, fanned):
        synthetic.store(lake, batch)
        body = tg_message(401, 1, "retried")  # one version in two raw keys, most likely in two shares
        lake.put(layout.raw_key("telegram", D1, body), body)
        retry = body.replace(b'"update_id":401001', b'"update_id":401777')
        lake.put(layout.raw_key("telegram", D1, retry), retry)
    want = etl.run_day(single, D1, salt)
    read = [fanout.run_share(fanned, D1, i, 4, salt) for i in range(4)]
    assert sum(read) == want.deliveries and all(read)
    got = fanout.merge(fanned, D1, 4, salt)
    assert outputs(fanned, D1) == outputs(single, D1)
    assert (got.messages, got.statuses, got.rejects, got.duplicates) == (
        want.messages, want.statuses, want.rejects, want.duplicates)
    assert not keys(fanned, layout.etl_prefix(D1) + "shares/")  # the shares are gone
    assert json.loads(fanned.get(layout.commit_key(D1)))["raw"] == json.loads(single.get(layout.commit_key(D1)))["raw"]
    assert etl.behind_reason(fanned, D1, salt) is None


def test_a_share_without_its_mentions_part_leaves_the_day_without_an_index(tmp_path):
    """The index is best effort: a merge that cannot vouch for every raw key writes none (forget then reads the
    day's raw data), and the tables are those of one full run all the same."""
    batch = synthetic.deliveries(200, seed=6, day=D1)
    single, fanned = FolderStorage(tmp_path / "single"), FolderStorage(tmp_path / "fanned")
    for lake in (single, fanned):
        synthetic.store(lake, batch)
    etl.run_day(single, D1)
    for i in range(3):
        fanout.run_share(fanned, D1, i, 3)
    fanned.delete(layout.share_key(D1, 3, 1, fanout.MENTIONS))
    fanout.merge(fanned, D1, 3)
    assert not keys(fanned, layout.mentions_key(D1)) and keys(single, layout.mentions_key(D1))
    tables = [layout.part_key(t, D1) for t in layout.TABLES]
    assert {k: fanned.get(k) for k in tables} == {k: single.get(k) for k in tables}


def test_a_merge_refuses_shares_of_other_raw_data(tmp_path):
    lake = FolderStorage(tmp_path)
    synthetic.store(lake, synthetic.deliveries(20, seed=6, day=D1))
    for i in range(2):
        fanout.run_share(lake, D1, i, 2)
    body = tg_message(402, 1, "late")
    lake.put(layout.raw_key("telegram", D1, body), body)
    with pytest.raises(fanout.ShareError, match="other raw data"):
        fanout.merge(lake, D1, 2)
    fanout.run_share(lake, D1, 0, 2)  # share 0 made again, share 1 lost
    for table in layout.TABLES:
        lake.delete(layout.share_key(D1, 2, 1, table))
    with pytest.raises(fanout.ShareError, match="missing"):
        fanout.merge(lake, D1, 2)
    assert etl.behind_reason(lake, D1)  # nothing was committed


# --- listing a range of raw names --------------------------------------------------------------------------------


def test_a_range_listing_is_that_slice_of_the_full_listing(lake):
    names = [f"{i:04x}{'0' * 60}.json" for i in range(0, 16 ** 4, 4099)]
    for name in names:
        lake.put(f"raw/source=telegram/dt=2026-11-20/{name}", b"{}")
    lake.put("raw/source=telegram/dt=2026-11-21/0000.json", b"{}")  # another day: outside the prefix
    prefix = "raw/source=telegram/dt=2026-11-20/"
    everything = list(lake.keys(prefix))
    assert everything == [prefix + n for n in names]
    assert list(lake.keys(prefix, after=prefix + "4000", before=prefix + "8000")) == [
        k for k in everything if prefix + "4000" < k < prefix + "8000"] != []
    assert list(lake.keys(prefix, after=prefix + "f000")) == [k for k in everything if k > prefix + "f000"] != []
    assert list(lake.keys(prefix, before=prefix + "1000")) == [k for k in everything if k < prefix + "1000"] != []
    parts = [etl.name_range(i, 7) for i in range(7)]
    assert [k for a, b in parts for k in lake.keys(prefix, after=prefix + a if a else "",
                                                   before=prefix + b if b else "")] == everything


def test_an_s3_range_listing_starts_after_its_bound_and_stops_at_its_end(s3):
    from chalicelib.storage import S3Storage

    lake = S3Storage("chatlake-test", "lake", client=s3)
    prefix = "raw/source=whatsapp/dt=2026-11-20/"
    for i in range(1005):  # just over one page of 1,000
        lake.put(f"{prefix}{i:04x}.json", b"{}")
    calls: list[dict] = []
    s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda params, **_: calls.append(params))
    assert list(lake.keys(prefix, after=prefix + "0010", before=prefix + "0020")) == [
        f"{prefix}{i:04x}.json" for i in range(0x10, 0x20)]
    assert [(c.get("StartAfter"), c["Prefix"]) for c in calls] == [(f"lake/{prefix}0010", f"lake/{prefix}")]
    calls.clear()
    assert len(list(lake.keys(prefix))) == 1005 and len(calls) == 2  # the whole folder: both pages


def test_ranges_and_shares_list_the_day_as_one_listing_does(tmp_path):
    lake = FolderStorage(tmp_path)
    synthetic.store(lake, synthetic.deliveries(300, seed=8, day=D1))
    whole = etl.list_raw(lake, D1)
    assert etl.list_raw(lake, D1, ranges=5).objects == whole.objects
    shares = [etl.list_raw_range(lake, D1, i, 3) for i in range(3)]
    assert sorted(o for s in shares for o in s.objects) == sorted(whole.objects)
    assert all(fanout.share_of(k, 3) == i for i, s in enumerate(shares) for _, k in s.objects)
    with pytest.raises(ValueError, match="does not exist"):
        fanout.run_share(lake, D1, 3, 3)


# --- in AWS: daily_etl fans a big day out to etl_share invocations, the last one merges ---------------------------


def test_shares_for_a_day_over_the_threshold():
    assert fanout.shares_for(1_000, 0) == 0  # 0: never
    assert fanout.shares_for(500_000, 500_000) == 0
    assert fanout.shares_for(500_001, 500_000) == 3
    assert fanout.shares_for(1_000_000, 500_000) == 4
    assert fanout.shares_for(10 ** 9, 500_000) == fanout.MAX_SHARES
    assert fanout.worker_function("chatlake-prod-daily_etl", "daily_etl") == "chatlake-prod-etl_share"


def stubbed_lambda(sent: list[dict]):
    """A real boto3 Lambda client answered by botocore's Stubber (parameters checked against the API model):
    records each invocation's parameters."""
    import boto3
    from botocore.stub import ANY, Stubber

    client = boto3.client("lambda", region_name="us-east-1")
    client.meta.events.register("before-parameter-build.lambda.Invoke", lambda params, **_: sent.append(params))
    stubber = Stubber(client)
    for _ in range(8):
        stubber.add_response("invoke", {"StatusCode": 202}, {"FunctionName": "chatlake-dev-etl_share",
                                                             "InvocationType": "Event", "Payload": ANY})
    stubber.activate()
    return client


def test_daily_etl_fans_a_big_day_out_and_the_last_worker_merges_it(lake, tmp_path, monkeypatch):
    from chalice.test import Client

    from app import app
    from chalicelib import runtime

    yesterday = etl.yesterday()
    batch = synthetic.deliveries(240, seed=11, day=yesterday)
    single = FolderStorage(tmp_path / "single")
    for storage in (single, lake):
        synthetic.store(storage, batch)
    want = etl.run_day(single, yesterday)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chatlake-dev-daily_etl")
    monkeypatch.setenv("FANOUT_DELIVERIES", "100")  # 240 deliveries: 5 shares of about 50
    sent: list[dict] = []
    runtime.use_client("lambda", stubbed_lambda(sent))
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:us-east-1:123456789012:rule/daily"])
        days = client.lambda_.invoke("daily_etl", event).payload["days"]
        assert [d["day"] for d in days if d["deliveries"]] == [yesterday.isoformat()]
        assert "fanned out over 5 etl_share invocations" in str(days)
        assert etl.behind_reason(lake, yesterday)  # nothing committed until the merge
        payloads = [json.loads(p["Payload"]) for p in sent]
        assert payloads == [{"day": yesterday.isoformat(), "share": i, "shares": 5} for i in range(5)]
        replies = [client.lambda_.invoke("etl_share", p).payload for p in reversed(payloads)]  # any order
        refused = client.lambda_.invoke("etl_share", {"day": "yesterday", "share": 0}).payload
    assert [r["merged"] is not None for r in replies] == [False] * 4 + [True]
    assert sum(r["deliveries"] for r in replies) == want.deliveries
    assert replies[-1]["merged"]["messages"] == want.messages
    assert outputs(lake, yesterday) == outputs(single, yesterday)
    assert etl.behind_reason(lake, yesterday) is None
    assert not keys(lake, layout.etl_prefix(yesterday) + "shares/")  # shares and the merge's claim are gone
    assert refused["ok"] is False and "YYYY-MM-DD" in refused["error"]


def test_a_worker_that_finds_the_merge_claimed_leaves_it(tmp_path):
    lake = FolderStorage(tmp_path)
    synthetic.store(lake, synthetic.deliveries(30, seed=12, day=D1))
    fanout.run_share(lake, D1, 0, 2)
    lake.put(layout.share_claim_key(D1, 2), b"")  # another worker landed at the same moment and merges
    reply = fanout.work(lake, fanout.Task(D1, 1, 2))
    assert reply["merged"] is None and etl.read_commit(lake, D1) is None
