"""How many intra-op threads torch uses: the cores this process may run on, the ones other work
leaves free, a share per job, and :func:`threads` ("N threads, then restore")."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from lenet.runtime.environment import MAX_THREADS


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Intra-op threads for each of `jobs` processes sharing this machine's cores."""
    return max(1, available_cores() // jobs)


def _running_elsewhere() -> int | None:
    """Runnable tasks on the machine now that are not this process's own threads
    (/proc/loadavg's 4th field, less this process's threads in state R: torch's own worker
    threads spin for a while after each op and must not count as other work)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for task in os.scandir("/proc/self/task"):
            with open(os.path.join(task.path, "stat")) as f:
                own += f.read().rsplit(")", 1)[-1].split()[0] == "R"
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - max(own, 1))


def free_cores(samples: int = 5, gap: float = 0.01) -> int:
    """Cores of this process's affinity set that other work is not using right now.

    The fewest runnable tasks elsewhere over a few samples ``gap`` seconds apart (a job that
    keeps a core busy is in every sample; a blip is not), subtracted from the cores this
    process may use; at least 1. Used for the default thread count: on a 2-core machine beside
    one busy job, two threads make every op wait for the thread that shares its core with the
    other job (measured in BENCHMARKS.md), one thread does not.
    """
    busy = []
    for i in range(samples):
        n = _running_elsewhere()
        if n is None:
            return available_cores()
        busy.append(n)
        if i + 1 < samples:
            time.sleep(gap)
    return max(1, available_cores() - min(busy))


def default_threads() -> int | None:
    """Intra-op threads for a command that was not told (None: it was, by ``OMP_NUM_THREADS``,
    which torch honours itself)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return free_cores()


def use_free_cores() -> int | None:
    """A command's start: intra-op threads for the cores free now (see :func:`free_cores`),
    unless ``OMP_NUM_THREADS`` set them; returns the count set (None: left to the variable)."""
    count = default_threads()
    if count is not None:
        torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[int]:
    """N threads, then restore: torch's intra-op thread count is `n` inside the block (left as
    it is when `n` is None or not positive) and the count from before after it, also when the
    block raises. Yields the count in force inside.

    torch is told the count even when it already has it, as the trainer always did: the call
    also sets up OpenMP's and MKL's pools, and leaving it out measured ~3 % slower epochs of
    the compiled lenet5 step (interleaved runs, BENCHMARKS.md)."""
    if n is not None and n > MAX_THREADS:  # OpenMP segfaults past ~10^5 on Linux
        raise ValueError(f"{n} threads is more than {MAX_THREADS}, the most lenet starts")
    before = torch.get_num_threads()
    if n is not None and n > 0:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
