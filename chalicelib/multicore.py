"""Work over a sequence spread on the machine's cores: contiguous slices, one forked process each, results in order.

The ETL's read-and-parse of a large day on a local disk is CPU work in Python, so one process uses one core while
the others idle (a laptop, a Lambda function with more memory has more vCPUs). `in_slices` cuts the items into
contiguous slices in their order, works on the first slice in this process and on each other slice in a forked
child, and returns the results in slice order: a caller that merges them in that order sees what one pass over
the items would have seen (the ETL's "first raw key in key order wins" stays true).

Plain `os.fork` and a pipe per child, not `multiprocessing`'s pools: its queues need POSIX semaphores, which Lambda
does not have, and its spawn start would re-import the program. A fork copies only the calling thread, so a
lock another thread holds (a terminal's progress bar, S3's reader threads) could hang the child: `usable_cores`
answers 1 while another thread is alive. A child that dies without a result has its slice redone in this process;
an exception in a child is raised here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("chatlake.multicore")

T = TypeVar("T")
R = TypeVar("R")

_OK, _FAILED = b"\x00", b"\x01"
SAMPLES = 5  # readings of the runnable tasks, 5 ms apart, that `other_runnable` averages


def usable_cores() -> int:
    """How many processes may work side by side now: this one, plus the cores it may run on that other programs
    leave idle; 1 when forking is not safe (no `os.fork`, or another thread alive). A worker on a busy core only
    adds the cost of sending its rows back: on the shared 2-core development machine at load 4, two processes took
    2.2× the floor and one 2.0×."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    others = other_runnable()
    return max(1, min(cores, 1 + round(cores - 1 - others)))


def other_runnable() -> float:
    """Other programs' demand for CPU now, in cores. On Linux, the tasks runnable at this moment (`procs_running` of
    /proc/stat, which counts this process), averaged over a few samples 5 ms apart: the 1-minute load average lags
    by a minute, so processes that just ended (the previous steps of a script, a test run) still count in it, and
    it counts tasks waiting on a disk. Elsewhere, the load average less this process."""
    samples = []
    for i in range(SAMPLES):
        running = _procs_running()
        if running is None:
            break
        samples.append(max(0, running - 1))
        if i < SAMPLES - 1:
            time.sleep(0.005)
    if samples:
        return sum(samples) / len(samples)
    try:
        return max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        return 0.0


def _procs_running() -> int | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"procs_running "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def slices(items: Sequence[T], count: int) -> list[Sequence[T]]:
    """`items` cut into `count` contiguous slices of nearly equal length, in order."""
    n = len(items)
    return [items[i * n // count:(i + 1) * n // count] for i in range(count)]


@dataclass
class _Child(Generic[T]):
    pid: int
    fd: int
    part: Sequence[T]
    index: int


def in_slices(items: Sequence[T], processes: int, work: Callable[[Sequence[T], int], R],
              encode: Callable[[R], bytes], decode: Callable[[bytes], R],
              meanwhile: Callable[[], object] | None = None) -> list[R]:
    """`work(slice, index)` on each of `processes` contiguous slices of `items`, slice 0 here (only it may show
    progress) and the others in forked children (whose results cross a pipe through `encode`/`decode`); the
    results in slice order. `meanwhile` runs here once slice 0 is done, while the children may still work."""
    parts = slices(items, max(1, processes))
    children: list[_Child[T]] = []
    try:
        for index, part in enumerate(parts[1:], 1):
            children.append(_fork(part, index, work, encode))
        results = [work(parts[0], 0)]
        if meanwhile and children:
            meanwhile()
        while children:
            results.append(_result(children.pop(0), work, decode))
        return results
    finally:
        for child in children:  # only when this process failed first: the children's work is not wanted
            _stop(child)


def _fork(part: Sequence[T], index: int, work: Callable[[Sequence[T], int], R],
          encode: Callable[[R], bytes]) -> _Child[T]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code, never runs its exit handlers
        code = 1
        try:
            os.close(read_fd)
            try:
                data = _OK + encode(work(part, index))
            except Exception as e:  # the parent raises it, as if the work had run there
                data = _FAILED + _pickled(e)
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return _Child(pid, read_fd, part, index)


def _pickled(error: Exception) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception:  # an exception that does not pickle still says what happened
        return pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))


def _result(child: _Child[T], work: Callable[[Sequence[T], int], R], decode: Callable[[bytes], R]) -> R:
    """The child's result (read to the end of its pipe, then reaped); its slice redone here if it has none."""
    chunks = []
    try:
        while chunk := os.read(child.fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(child.fd)
        _, status = os.waitpid(child.pid, 0)
    data = b"".join(chunks)
    if data[:1] == _FAILED:
        raise pickle.loads(data[1:])
    if data[:1] != _OK or os.waitstatus_to_exitcode(status) != 0:
        log.warning("a worker process ended without its result (exit %s): its %d items are redone in this one",
                    os.waitstatus_to_exitcode(status), len(child.part))
        return work(child.part, child.index)
    return decode(data[1:])


def _stop(child: _Child[T]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    os.close(child.fd)
    os.waitpid(child.pid, 0)
