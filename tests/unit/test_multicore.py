"""Work spread over forked processes: contiguous slices, results in slice order, failures raised or redone."""

from __future__ import annotations

import marshal
import os

import pytest

from chalicelib import multicore


def squares_and_pid(part, index):
    return [x * x for x in part], os.getpid(), index


def test_slices_are_contiguous_cover_everything_and_keep_order():
    items = list(range(10))
    parts = multicore.slices(items, 3)
    assert [list(p) for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert [list(p) for p in multicore.slices(items[:2], 4)] == [[], [0], [], [1]]


def test_each_slice_but_the_first_runs_in_a_child_and_results_come_in_order():
    waited = []
    results = multicore.in_slices(list(range(100)), 3, squares_and_pid, marshal.dumps, marshal.loads,
                                  meanwhile=lambda: waited.append(True))
    assert [x for rows, _, _ in results for x in rows] == [x * x for x in range(100)]
    pids = [pid for _, pid, _ in results]
    assert pids[0] == os.getpid() and len(set(pids)) == 3
    assert [index for _, _, index in results] == [0, 1, 2]
    assert waited == [True]
    assert multicore.in_slices([1, 2], 1, squares_and_pid, marshal.dumps, marshal.loads)[0][1:] == (os.getpid(), 0)


def test_an_error_in_a_child_is_raised_here():
    def work(part, index):
        if 7 in part:
            raise ValueError("item 7 is bad")
        return list(part)

    with pytest.raises(ValueError, match="item 7 is bad"):
        multicore.in_slices(list(range(10)), 2, work, marshal.dumps, marshal.loads)


def test_a_child_that_dies_has_its_slice_redone_here(caplog):
    parent = os.getpid()

    def work(part, index):
        if os.getpid() != parent:
            os._exit(3)  # killed, out of memory...: no result on the pipe
        return [x + 1 for x in part]

    results = multicore.in_slices(list(range(10)), 2, work, marshal.dumps, marshal.loads)
    assert results == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert "without its result (exit 3)" in caplog.text


def test_no_fork_while_another_thread_is_alive():
    import threading

    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert multicore.usable_cores() == 1
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize(("running", "want"), [([1], 4), ([1, 2, 1, 1, 1], 4), ([2], 3), ([3, 3, 4, 3, 3], 2),
                                                ([5], 1), ([13], 1)])
def test_cores_other_programs_keep_busy_are_not_used(monkeypatch, running, want):
    """Linux: the tasks runnable now (this process among them), a few samples; not the lagging load average."""
    samples = iter(running * multicore.SAMPLES)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(multicore, "_procs_running", lambda: next(samples))
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # programs that just ended: not counted
    assert multicore.usable_cores() == want


@pytest.mark.parametrize(("load", "want"), [(0.2, 4), (1.0, 4), (2.4, 3), (3.4, 2), (4.6, 1), (12.0, 1)])
def test_without_proc_stat_the_load_average_tells(monkeypatch, load, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(multicore, "_procs_running", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert multicore.usable_cores() == want


def test_procs_running_is_read_from_proc_stat():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat here")
    assert multicore._procs_running() >= 1  # this process, reading it
