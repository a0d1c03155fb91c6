"""A folder lake's arrivals journals: each raw folder notes the names stored in it, in arrival order, and an
intraday run reads the journal from where the last run left it instead of listing the day; when the journal
cannot answer for its folder, the run lists the day as before."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from chalicelib import etl, intraday, layout, runlog
from chalicelib.storage import ARRIVALS, FolderStorage
from tests.integration.test_exactly_once import D1, rows, tg_message

PREFIX = layout.raw_prefix("telegram", D1)


def put(lake: FolderStorage, *bodies: bytes) -> list[str]:
    """As the webhook stores a delivery: the first copy wins."""
    out = []
    for body in bodies:
        lake.put(layout.raw_key("telegram", D1, body), body, overwrite=False)
        out.append(layout.digest(body) + ".json")
    return out


def changed_behind_its_back(folder: Path) -> None:
    """Make the folder's own time later than its journal's, as a write by other means leaves it (the clock
    behind file times ticks in milliseconds, so a test sets it rather than racing it)."""
    journal = (folder / ARRIVALS).stat().st_mtime_ns
    os.utime(folder, ns=(journal + 10_000_000, journal + 10_000_000))
    time.sleep(0.05)  # past that time: what is noted next is the folder's newest change again


def test_the_folder_notes_raw_objects_in_arrival_order_and_resumes_from_a_mark(tmp_path: Path):
    lake = FolderStorage(tmp_path)
    assert lake.arrival_mark(PREFIX) == (0, 0) and lake.arrivals(PREFIX, (0, 0)) == ([], (0, 0))
    a, b = put(lake, tg_message(401, 2, "b"), tg_message(401, 1, "a"))
    put(lake, tg_message(401, 2, "b"))  # a retry of the first: noted again (its writer may have died before)
    names, mark = lake.arrivals(PREFIX, (0, 0))
    assert names == [a, b, a] and mark == lake.arrival_mark(PREFIX)
    assert [k.rpartition("/")[2] for k in lake.keys(PREFIX)] == sorted([a, b])  # the journal is not an object
    assert [k.rpartition("/")[2] for k in lake.keys("raw/")] == sorted([a, b])
    [c] = put(lake, tg_message(401, 3, "c"))
    assert lake.arrivals(PREFIX, mark) == ([c], lake.arrival_mark(PREFIX))
    with open(tmp_path / PREFIX / ARRIVALS, "ab") as f:  # a line being appended right now: not yet
        f.write(b"d" * 20)
    assert lake.arrivals(PREFIX, mark)[0] == [c]
    lake.put("enriched/messages/dt=2026-11-20/part-0.parquet", b"x", overwrite=False)  # only the raw layer
    assert not (tmp_path / "enriched/messages/dt=2026-11-20" / ARRIVALS).exists()


def test_the_journal_does_not_answer_for_a_folder_changed_behind_its_back(tmp_path: Path):
    lake = FolderStorage(tmp_path)
    put(lake, tg_message(402, 1, "a"))
    folder = tmp_path / PREFIX
    start = lake.arrival_mark(PREFIX)
    assert lake.arrivals(PREFIX, start) == ([], start)
    assert lake.arrivals(PREFIX, (start[0] + 1, 0)) is None  # another journal than the mark's
    assert lake.arrivals(PREFIX, (start[0], start[1] + 1)) is None  # shorter than the mark
    (folder / "copied-by-hand.json").write_bytes(tg_message(402, 2, "b"))
    changed_behind_its_back(folder)
    assert lake.arrivals(PREFIX, start) is None
    put(lake, tg_message(402, 3, "c"))  # the next note: the journal is the folder's newest change again
    assert lake.arrivals(PREFIX, start) is not None
    (folder / ARRIVALS).unlink()  # objects but no journal (a lake written before journals)
    assert lake.arrivals(PREFIX, (0, 0)) is None


def test_a_refresh_reads_the_journal_not_the_day_and_lists_when_the_journal_cannot_answer(tmp_path: Path,
                                                                                         monkeypatch):
    lake = FolderStorage(tmp_path)
    put(lake, tg_message(403, 1, "a"), tg_message(403, 2, "b"))
    etl.run_day(lake, D1)
    [full] = runlog.read_all(lake, D1)
    assert full.arrivals["telegram"] == list(lake.arrival_mark(PREFIX))  # taken before its listing
    put(lake, tg_message(403, 3, "c"), tg_message(403, 1, "a"))  # one new, one retry of a consumed delivery
    listed = []
    real_keys = FolderStorage.keys

    def keys(self: FolderStorage, prefix: str):
        listed.append(prefix)
        return real_keys(self, prefix)

    monkeypatch.setattr(FolderStorage, "keys", keys)
    first = intraday.run_refresh(lake, D1)
    assert (first.deliveries, first.messages) == (1, 1)
    assert not [p for p in listed if p.startswith("raw/") and layout.day_of(p) == D1]  # the day was not listed
    assert intraday.run_refresh(lake, D1).deliveries == 0
    (tmp_path / PREFIX / layout.raw_key("telegram", D1, tg_message(403, 4, "d")).rpartition("/")[2]).write_bytes(
        tg_message(403, 4, "d"))  # stored by other means: in no journal
    changed_behind_its_back(tmp_path / PREFIX)
    second = intraday.run_refresh(lake, D1)
    assert (second.deliveries, second.messages) == (1, 1)
    assert PREFIX in listed  # found by listing the day
    put(lake, tg_message(403, 5, "e"))
    listed.clear()
    assert intraday.run_refresh(lake, D1).messages == 1 and PREFIX not in listed  # the journal again
    # copied in by hand, then a delivery noted after it: the journal answers again and misses the copy; a
    # refresh by hand lists the day (what `status` calls waiting is found)
    name = layout.raw_key("telegram", D1, tg_message(403, 6, "f")).rpartition("/")[2]
    (tmp_path / PREFIX / name).write_bytes(tg_message(403, 6, "f"))
    changed_behind_its_back(tmp_path / PREFIX)
    put(lake, tg_message(403, 7, "g"))
    assert intraday.run_refresh(lake, D1).messages == 1  # only g: the journal's
    assert intraday.run_refresh(lake, D1, journal=False).messages == 1  # f
    assert len(rows(lake, "messages", D1)) == 7


def test_a_manifest_of_format_1_is_still_read(tmp_path: Path):
    lake = FolderStorage(tmp_path)
    [name] = put(lake, tg_message(404, 1, "a"))
    old = {"format": 1, "run": "20261120T100000.000000Z-intraday", "kind": "intraday", "day": str(D1),
           "started_at": "2026-11-20T10:00:00+00:00", "finished_at": "2026-11-20T10:00:01+00:00", "seconds": 1.0,
           "deliveries": 1, "rows": {"messages": 1}, "files": {}, "newest_raw_at": None, "oldest_raw_at": None,
           "consumed": {"telegram": [name.removesuffix(".json")]}}
    lake.put(layout.run_key(D1, old["run"]), orjson.dumps(old))
    [m] = runlog.read_all(lake, D1)
    assert m.consumed == {"telegram": [name.removesuffix(".json")]} and m.arrivals is None
    assert intraday.run_refresh(lake, D1).deliveries == 0  # listed (no marks yet), and its delivery consumed


@pytest.mark.parametrize("names", [[], ["a" * 64], ["b" * 64, "a" * 64]])
def test_manifest_format_2_round_trips_the_consumed_names(names):
    m = runlog.Manifest(run="r", kind="full", day=D1, started_at="", finished_at="", seconds=0.0,
                        consumed={"telegram": names}, arrivals={"telegram": [5, 10]})
    back = runlog.Manifest.from_json(m.to_json())
    assert back.consumed == {"telegram": sorted(names)} and back.deliveries == len(names)
    assert back.arrivals == {"telegram": [5, 10]}


def test_an_emptied_raw_folder_keeps_no_journal(tmp_path: Path):
    lake = FolderStorage(tmp_path)
    a, b = put(lake, tg_message(405, 1, "a"), tg_message(405, 2, "b"))
    lake.delete(PREFIX + a)  # an erasure: the folder still holds b, the journal stays
    assert (tmp_path / PREFIX / ARRIVALS).exists()
    lake.delete(PREFIX + b)  # the last delivery (retention): nothing of the day is left, its names neither
    assert list((tmp_path / PREFIX).iterdir()) == []
