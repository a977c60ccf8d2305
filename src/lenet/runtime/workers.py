"""Work shared among forked copies of this process: :func:`fork_map` runs a function on each of
a few shards of the work in worker processes, each with its share of the cores, and returns
the results in order.

Reading many image files is this kind of work: decoding and normalizing a file costs about
0.2 ms of Python holding the interpreter's lock, so two threads cannot do it at once, and a
second process started afresh spends seconds importing torch before reading a file. A *fork*
is a copy of this process as it is (torch imported, the weights loaded) in milliseconds, so
each worker reads its shard as the whole process would, on its own core (BENCHMARKS.md, issue
30). Forking is Linux's way; elsewhere, or for one shard, the work runs here, one shard after
the other. The shards and the function reach the workers through the fork itself (nothing of
them is sent); each result comes back pickled through a pipe, from this process's own copy
(nothing from outside is ever unpickled). A fork is not free: both processes then pay for
the memory they write first (copy-on-write), 10-20 % more time on their first 500 files, and
starting, sending the results back and stopping cost 30-40 ms.

A worker that dies (killed, out of memory) loses nothing: its shard is done again here. A
worker dies with this process (Linux's parent-death signal), so a `lenet read` stopped by
SIGTERM or SIGKILL leaves no worker behind.
(Commands that lenet runs as child processes, such as the runs of `lenet sweep`, are
:mod:`lenet.runtime.jobs`' work.)
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from lenet.runtime.threads import threads

T = TypeVar("T")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal for this process when its parent dies
# What the workers run, set before they are forked (a fork copies it) and only then.
_work: tuple[Callable[[Any], Any], Sequence[Any]] | None = None
_one_at_a_time = threading.Lock()


def can_fork() -> bool:
    """Whether :func:`fork_map` runs shards in worker processes here (Linux; macOS's system
    libraries are not safe to use in a fork of a process that started threads)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def shards(items: Sequence[T], workers: int, least: int) -> list[Sequence[T]]:
    """`items` cut into at most `workers` contiguous shards of nearly equal size, each of at
    least `least` items (one shard, the whole, when there are too few to share).

    >>> [len(s) for s in shards(range(1000), 2, 256)], [len(s) for s in shards(range(300), 2, 256)]
    ([500, 500], [300])
    """
    count = max(1, min(workers, len(items) // max(least, 1)))
    bounds = [round(i * len(items) / count) for i in range(count + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def fork_map(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """``[fn(part) for part in parts]``, each part on a core of its own: the first here, the
    others in ``len(parts) - 1`` forked worker processes, all with one torch thread; or one
    after the other here, on this process's threads, when there is one part or this system
    does not fork. `fn` may be any callable, a closure too: the workers inherit it. A worker's
    error is raised here; the parts of a worker that dies are done here.

    One thread each, not a share of the cores: GNU OpenMP (torch's thread pool) hangs in a
    fork whose parent had started its pool, as soon as the fork asks for more than one thread.

    >>> fork_map(lambda part: sum(part), [range(10), range(10, 20)])
    [45, 145]
    """
    if len(parts) < 2 or not can_fork():
        return [fn(part) for part in parts]
    global _work
    done: dict[int, R] = {}
    with _one_at_a_time, warnings.catch_warnings():
        # Python 3.12+ warns of forking a process that has threads (torch's thread pool): the
        # workers use no lock another thread could hold, only torch, numpy and Pillow.
        warnings.filterwarnings("ignore", message=".*use of fork.*", category=DeprecationWarning)
        _work = (fn, parts)
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(len(parts) - 1, mp_context=context,
                                     initializer=_start, initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_run, i) for i in range(1, len(parts))]
                # The first part is done here meanwhile: one process fewer to start and to
                # hear back from.
                with threads(1):
                    done[0] = fn(parts[0])
                for i, future in enumerate(futures, 1):
                    done[i] = future.result()
        except BrokenProcessPool:  # a worker died: what it did not finish is done here
            pass
        finally:
            _work = None
    return [done[i] if i in done else fn(part) for i, part in enumerate(parts)]


def _start(parent: int) -> None:
    """A worker's start: one torch thread (see :func:`fork_map`), and killed with its parent:
    a worker left behind would finish its part and then wait forever for the next."""
    with contextlib.suppress(OSError, AttributeError):  # Linux's prctl; fork_map forks there
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    torch.set_num_threads(1)


def _run(index: int) -> Any:
    assert _work is not None, "a worker must be forked by fork_map"
    fn, parts = _work
    return fn(parts[index])
