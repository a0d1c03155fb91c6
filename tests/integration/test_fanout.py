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
    names = [layout.part_key(t, day) for t in layout.TABLES] + [layout.versions_key(day)]
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
