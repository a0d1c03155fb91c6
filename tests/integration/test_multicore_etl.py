"""A large day's read-and-parse on several processes gives the rows, and the files, of one process."""

from __future__ import annotations

import pytest

from chalicelib import erasure, etl, layout, multicore
from chalicelib.storage import FolderStorage, S3Storage
from chatlake.local import synthetic
from tests.integration.test_exactly_once import D1, tg_message


def day_lake(root) -> FolderStorage:
    lake = FolderStorage(root)
    synthetic.store(lake, synthetic.deliveries(300, seed=11, day=D1))
    for chat in range(501, 521):  # the same version in two raw keys, which sort into different slices
        body = tg_message(chat, 1, "retried")
        retry = body.replace(f'"update_id":{chat}001'.encode(), f'"update_id":{chat}777'.encode())
        for raw in (body, retry):
            lake.put(layout.raw_key("telegram", D1, raw), raw)
    for junk in (b'{"update_id": "x"}', b"[1, 2]"):
        lake.put(layout.raw_key("telegram", D1, junk), junk)  # rejects
    return lake


@pytest.fixture
def small_days_fork(monkeypatch):
    """Days of a few hundred deliveries parsed on up to 4 processes, as days of 100k are."""
    monkeypatch.setattr(etl, "MIN_DELIVERIES_PER_PROCESS", 50)
    monkeypatch.setattr(multicore, "usable_cores", lambda: 4)


@pytest.mark.parametrize("salt", [None, "pepper"])
def test_rows_on_several_processes_are_those_of_one(tmp_path, salt, small_days_fork):
    lake = day_lake(tmp_path)
    listing = etl.list_raw(lake, D1)
    one = etl.read_day(lake, listing, salt, deny=erasure.DenyList(), processes=1)
    progress = []
    many = etl.read_day(lake, listing, salt, lambda done, total: progress.append((done, total)),
                        deny=erasure.DenyList(), processes=3)
    assert one.duplicates >= 20 and len(one.rejects) == 2
    assert list(many.messages.items()) == list(one.messages.items())  # same rows, same copies, same order
    assert list(many.statuses.items()) == list(one.statuses.items())
    assert (many.rejects, many.duplicates) == (one.rejects, one.duplicates)
    assert many.mentions == one.mentions and len(one.mentions) == len(listing.objects)  # forget's index too
    assert progress[-1] == (len(listing.objects), len(listing.objects))


def test_a_large_day_runs_on_the_usable_cores_with_the_same_bytes_out(tmp_path, small_days_fork):
    single, multi = day_lake(tmp_path / "single"), day_lake(tmp_path / "multi")
    assert etl.parse_processes(multi, 400) == 4 and etl.parse_processes(multi, 99) == 1
    assert etl.parse_processes(multi, 400, at_most=2) == 2 and etl.parse_processes(multi, 400, at_most=1) == 1
    want = etl.run_day(single, D1, "pepper", processes=1)
    got = etl.run_day(multi, D1, "pepper")
    names = [layout.part_key(t, D1) for t in layout.TABLES] + [layout.versions_key(D1), layout.mentions_key(D1)]
    assert {k: multi.get(k) for k in names} == {k: single.get(k) for k in names}
    assert (got.messages, got.statuses, got.rejects, got.duplicates) == (
        want.messages, want.statuses, want.rejects, want.duplicates)


def test_s3_reads_stay_in_one_process(s3, monkeypatch):
    monkeypatch.setattr(multicore, "usable_cores", lambda: 4)
    assert etl.parse_processes(S3Storage("chatlake-test", "lake", client=s3), 1_000_000) == 1
