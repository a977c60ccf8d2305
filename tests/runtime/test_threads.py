"""Thread counts: the cores this process may use, the free ones, a share per job, and
threads(n) ("N threads, then restore")."""

from __future__ import annotations

import os

import pytest
import torch

from lenet.runtime.threads import available_cores, threads, threads_per_job


def test_available_cores_follows_the_affinity_mask() -> None:
    cores = available_cores()
    assert cores >= 1
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


def test_threads_per_job_shares_the_cores_and_never_drops_to_zero() -> None:
    cores = available_cores()
    assert threads_per_job(1) == cores
    assert threads_per_job(2) == max(1, cores // 2)
    assert threads_per_job(10 * cores) == 1


def test_free_cores_leaves_the_busy_ones(monkeypatch) -> None:
    from lenet.runtime import threads as lenet_threads

    monkeypatch.setattr(lenet_threads, "available_cores", lambda: 4)
    monkeypatch.setattr(lenet_threads, "_running_elsewhere", iter([1, 3, 1, 2, 1]).__next__)
    assert lenet_threads.free_cores(gap=0) == 3  # the job in every sample counts; the blips do not
    monkeypatch.setattr(lenet_threads, "_running_elsewhere", lambda: 9)
    assert lenet_threads.free_cores(gap=0) == 1  # never zero
    monkeypatch.setattr(lenet_threads, "_running_elsewhere", lambda: None)  # no /proc/loadavg
    assert lenet_threads.free_cores(gap=0) == 4


def test_omp_num_threads_wins_over_the_free_cores(monkeypatch) -> None:
    from lenet.runtime import threads as lenet_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert lenet_threads.default_threads() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(lenet_threads, "free_cores", lambda: 2)
    assert lenet_threads.default_threads() == 2


def test_threads_sets_the_count_and_restores_it() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with threads(other) as n:
        assert n == other == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_threads_restores_the_count_when_the_block_raises() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(KeyError), threads(other):
        raise KeyError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("n", [None, 0, -3])
def test_threads_without_a_positive_count_leaves_it(n: int | None) -> None:
    before = torch.get_num_threads()
    with threads(n) as inside:
        assert inside == before == torch.get_num_threads()
    assert torch.get_num_threads() == before
