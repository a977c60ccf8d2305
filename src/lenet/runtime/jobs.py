"""Child processes, one way: start a command, wait for it (with a timeout if asked), and stop it,
with every process it started in turn, on a timeout, Ctrl-C, SIGTERM or SIGHUP.

Every child lenet starts goes through here: the runs of `lenet sweep` and `lenet paper`
(:mod:`lenet.training.sweep`), the bench's whole-process timings and its busy core, `lenet bench
--isa` and the torchrun launcher of `lenet train --nproc`. Two kinds of child:

- a *job* (:meth:`Group.run`, :func:`run`) runs in a session of its own, so that a timeout or a
  stop kills its whole process group (a run of `lenet train --nproc` has workers of its own);
  its output is captured, or written to a log file;
- a *foreground* child (:func:`run_foreground`) shares this process's terminal, its output and
  its Ctrl-C: it is given time to stop on its own before it is killed. A SIGTERM or SIGHUP
  sent to this process alone is passed on to it, with the same time to stop, so `kill PID` of
  `lenet train --nproc 2` stops torchrun, which stops its workers.

While :func:`stopped_by_signals` is in force, SIGTERM or SIGHUP kills every job of this process
(no new one starts) and then ends the process with the shell's status for the signal (143 for
SIGTERM), so a stopped `lenet paper -j 2` leaves no training run behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Set once SIGTERM or SIGHUP arrived: the process is ending, no job may start any more.
_ending = threading.Event()
_groups: weakref.WeakSet[Group] = weakref.WeakSet()


@dataclass(frozen=True)
class Finished:
    """How a child ended."""

    returncode: int | None  # None: it timed out and was killed; -N: ended by signal N
    seconds: float  # wall time, start to end (interpreter start and imports included)
    stdout: str = ""  # with capture=True
    stderr: str = ""
    timed_out: bool = False


class Stopped(Exception):
    """The group (or the whole process) is stopping: the job was not started."""


def _kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGKILL the process and, where it leads one, its process group (what it started)."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


class Group:
    """Jobs started together and stopped together (:meth:`stop`), from any thread."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen[str]] = set()
        # Reentrant: the SIGTERM handler may stop the group while the main thread holds it.
        self._lock = threading.RLock()
        self._stopped = False
        _groups.add(self)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float | None = None, capture: bool = False,
            log: Path | None = None) -> Finished:
        """Run `argv` to its end in a session of its own and say how it ended.

        `capture`: its stdout and stderr come back as text; `log`: both are written to that
        file instead (created or truncated); neither: they are this process's. Its stdin is
        empty. Past `timeout` seconds it is killed with its group (``timed_out``); an exception
        here (Ctrl-C) kills it too before going on. Raises :class:`Stopped` once the group or
        the process is stopping, and OSError when it cannot be started.
        """
        with contextlib.ExitStack() as files:
            out: IO[bytes] | int | None = subprocess.PIPE if capture else None
            err: IO[bytes] | int | None = out
            if log is not None:
                out = files.enter_context(_open_log(log))
                err = subprocess.STDOUT
            t0 = time.perf_counter()
            with self._lock:
                if self.stopped:
                    raise Stopped("not started: stopping")
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, env=None if env is None else dict(env),
                                        text=True, start_new_session=os.name == "posix")
                self._live.add(proc)
            try:
                return _wait(proc, timeout, t0)
            finally:
                with self._lock:
                    self._live.discard(proc)

    @property
    def stopped(self) -> bool:
        """Whether no job may start any more (the group or the process is stopping)."""
        return self._stopped or _ending.is_set()

    def stop(self) -> None:
        """Kill every job of the group now; none starts after this."""
        with self._lock:
            self._stopped = True
            for proc in self._live:
                _kill(proc)


def _open_log(path: Path) -> IO[bytes]:
    """`path` created or truncated for a child's output, never through a symbolic link
    (O_NOFOLLOW) and never blocking on a FIFO: anything but a regular file is an OSError."""
    flags = (os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    fd = os.open(path, flags, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.ftruncate(fd, 0)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def _wait(proc: subprocess.Popen[str], timeout: float | None, t0: float) -> Finished:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        stdout, stderr = proc.communicate()
        return Finished(None, time.perf_counter() - t0, stdout or "", stderr or "",
                        timed_out=True)
    except BaseException:  # Ctrl-C or SIGTERM in this thread: the job goes with us
        _kill(proc)
        proc.wait()
        raise
    return Finished(proc.returncode, time.perf_counter() - t0, stdout or "", stderr or "")


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        timeout: float | None = None, capture: bool = False,
        log: Path | None = None) -> Finished:
    """One job on its own (:meth:`Group.run` of a group of one)."""
    return Group().run(argv, env=env, timeout=timeout, capture=capture, log=log)


@contextlib.contextmanager
def background(argv: Sequence[str]) -> Iterator[None]:
    """`argv` runs (output discarded) while the block does, and is killed when it ends."""
    group = Group()
    worker = threading.Thread(target=_quietly, args=(group, argv), daemon=True)
    worker.start()
    try:
        yield
    finally:
        group.stop()
        worker.join(timeout=10)


def _quietly(group: Group, argv: Sequence[str]) -> None:
    with contextlib.suppress(Stopped, OSError):
        group.run(argv, capture=True)


class _Forwarded(Exception):
    """SIGTERM or SIGHUP arrived while a foreground child ran (and was passed on to it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_foreground(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   grace: float = 0.0) -> int:
    """Run `argv` in this process's group, on its terminal and output; its exit status.

    A Ctrl-C reaches it as it reaches us: it is given `grace` seconds to stop on its own (a
    trainer saves a checkpoint), and its status is returned; if it is still running then, or on
    a second Ctrl-C, it is killed and KeyboardInterrupt goes on. A SIGTERM or SIGHUP sent to
    this process alone (``kill PID``) is passed on to it, with the same `grace`; the status is
    then the shell's for the signal (143, 129), so the child never outlives us.
    """
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env))
    with _forwarding_signals(proc):
        try:
            return proc.wait()
        except KeyboardInterrupt:
            try:
                return proc.wait(timeout=grace)
            except (KeyboardInterrupt, subprocess.TimeoutExpired, _Forwarded):
                _kill_and_reap(proc)
                raise KeyboardInterrupt from None
        except _Forwarded as first:
            try:
                proc.wait(timeout=grace)
            except (KeyboardInterrupt, subprocess.TimeoutExpired, _Forwarded):
                _kill_and_reap(proc)  # stuck, or asked twice: no more waiting
            return 128 + first.signum


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


@contextlib.contextmanager
def _forwarding_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP are sent on to `proc` and raise :class:`_Forwarded`
    here (out of the wait). Only the main thread can set handlers: elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        raise _Forwarded(signum)

    with _handling(forward):
        yield


@contextlib.contextmanager
def _handling(handler: Callable[[int, object], None]) -> Iterator[None]:
    """`handler` for SIGTERM and SIGHUP (where the platform has them) within the block; the
    previous handlers afterwards."""
    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {s: signal.getsignal(s) for s in wanted}
    for s in wanted:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            if old is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(s, old)


def thread_env(threads: int) -> dict[str, str]:
    """The variables that give a child process `threads` intra-op threads (torch's OpenMP pool
    and MKL's), so that jobs sharing the cores do not fight over them."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def stop_all() -> None:
    """Kill every job this process started and start none from now on (the process ends)."""
    _ending.set()
    for group in list(_groups):
        group.stop()


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Within the block, SIGTERM or SIGHUP kills every job (:func:`stop_all`) and ends the
    process with status 128 + the signal (143, 129): :class:`SystemExit` from the main thread,
    so that the callers' own clean-up runs. Elsewhere than the main thread, where Python sets
    no handler, it does nothing (the main thread's handler covers the whole process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def end(signum: int, frame: object) -> None:
        stop_all()
        raise SystemExit(128 + signum)

    with _handling(end):
        yield
