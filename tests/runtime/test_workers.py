"""lenet.runtime.workers: shards of work in forked copies of this process, results in order,
nothing lost when a worker dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from lenet.runtime import workers
from lenet.runtime.threads import threads
from tests.runtime.test_jobs import _alive

forks = pytest.mark.skipif(not workers.can_fork(), reason="this system does not fork")


def test_shards_are_contiguous_nearly_equal_and_never_too_small() -> None:
    assert [list(s) for s in workers.shards(range(7), 3, 2)] == [[0, 1], [2, 3, 4], [5, 6]]
    assert [len(s) for s in workers.shards(range(1000), 4, 256)] == [333, 334, 333]
    assert [len(s) for s in workers.shards(range(10), 2, 256)] == [10]
    assert [len(s) for s in workers.shards(list(range(10)), 1, 1)] == [10]
    assert workers.shards([], 2, 1) == [[]]


@forks
def test_the_parts_run_here_and_in_workers_and_come_back_in_order() -> None:
    here = os.getpid()
    scale = 3  # a closure: the workers inherit it through the fork

    def work(part: range) -> tuple[int, list[int], int]:
        return os.getpid(), [scale * x for x in part], torch.get_num_threads()

    with threads(2):  # torch's pool started here before the fork: the workers must not hang
        torch.ones(64, 64) @ torch.ones(64, 64)
        out = workers.fork_map(work, workers.shards(range(9), 3, 1))
        assert torch.get_num_threads() == 2  # restored after this process's part
    assert [x for _, xs, _ in out for x in xs] == [3 * x for x in range(9)]
    pids = [pid for pid, _, _ in out]
    assert pids[0] == here and here not in pids[1:]  # the first part is done here
    assert {threads for _, _, threads in out} == {1}


def test_one_part_runs_here() -> None:
    assert workers.fork_map(lambda part: (os.getpid(), sum(part)), [range(4)]) == [
        (os.getpid(), 6)]


@forks
def test_a_workers_error_is_raised_here() -> None:
    def work(part: range) -> int:
        if part[0] == 5:
            raise ValueError(f"bad part {part[0]}")
        return sum(part)

    with pytest.raises(ValueError, match="bad part 5"):
        workers.fork_map(work, [range(0, 5), range(5, 10)])


@forks
def test_a_part_whose_worker_dies_is_done_again_here() -> None:
    here = os.getpid()

    def work(part: range) -> tuple[int, list[int]]:
        if os.getpid() != here and part[0] == 3:
            os._exit(9)  # killed, as by the OOM killer
        return os.getpid(), list(part)

    out = workers.fork_map(work, [range(0, 3), range(3, 6), range(6, 9)])
    assert [xs for _, xs in out] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert out[1][0] == here  # done again here


@forks
def test_a_worker_dies_with_its_parent(tmp_path) -> None:
    # The parent is killed while its worker still works: the worker must not be left behind
    # (it would finish its part, then wait forever for the next).
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from lenet.runtime import workers\n"
        "def work(part):\n"
        "    if part == 'worker':\n"
        "        open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "workers.fork_map(work, ['here', 'worker'])\n")
    pidfile = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pidfile)])
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline, "the worker never started"
            assert parent.poll() is None, "the parent ended early"
            time.sleep(0.05)
        worker = int(pidfile.read_text())
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _alive(worker):
            assert time.monotonic() < deadline, "the worker outlived its parent by 15 s"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)

