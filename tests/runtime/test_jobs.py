"""Child processes, one way (lenet.runtime.jobs): output, exit status, timeouts that take the
whole process group, stops, and SIGTERM that leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lenet.runtime import jobs

posix = pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX")


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_for(path: Path, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


# A child that starts a grandchild (as `lenet train --nproc` starts its workers), writes the
# grandchild's pid to argv[1] and waits.
PARENT_OF_ONE = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(sys.argv[1], "w").write(str(child.pid))
    time.sleep(120)
""")


def test_output_and_status_come_back() -> None:
    done = jobs.run([sys.executable, "-c", "import sys; print('out'); "
                     "print('err', file=sys.stderr); sys.exit(3)"], capture=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert not done.timed_out and done.seconds > 0


def test_a_log_gets_both_streams_and_the_env_is_the_childs(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = jobs.run([sys.executable, "-c", "import os, sys; print(os.environ['OMP_NUM_THREADS']);"
                     " print('to stderr', file=sys.stderr)"],
                    env={**os.environ, **jobs.thread_env(3)}, log=log)
    assert done.returncode == 0 and done.stdout == ""
    assert log.read_text().split() == ["3", "to", "stderr"]
    assert jobs.thread_env(2) == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


@posix
def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    done = jobs.run([sys.executable, "-c", PARENT_OF_ONE, str(pid_file)], timeout=3)
    assert done.timed_out and done.returncode is None and done.seconds >= 3
    assert _wait_gone(int(_wait_for(pid_file)))  # the grandchild went with it


@posix
def test_stop_kills_the_running_jobs_and_starts_no_more(tmp_path: Path) -> None:
    group = jobs.Group()
    pid_file = tmp_path / "grandchild"
    ended: list[jobs.Finished] = []
    worker = threading.Thread(target=lambda: ended.append(
        group.run([sys.executable, "-c", PARENT_OF_ONE, str(pid_file)])))
    worker.start()
    grandchild = int(_wait_for(pid_file))
    group.stop()
    worker.join(timeout=30)
    assert ended and ended[0].returncode == -signal.SIGKILL
    assert _wait_gone(grandchild) and group.stopped
    with pytest.raises(jobs.Stopped):
        group.run([sys.executable, "-c", "pass"])


def test_a_foreground_child_gives_its_status() -> None:
    assert jobs.run_foreground([sys.executable, "-c", "raise SystemExit(4)"]) == 4


@posix
def test_a_background_process_ends_with_the_block(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with jobs.background([sys.executable, "-c", "import os, sys, time; "
                          f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                          "time.sleep(120)"]):
        pid = int(_wait_for(pid_file))
        assert _alive(pid)
    assert _wait_gone(pid)


@posix
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_takes_every_job_with_it_and_exits_143(tmp_path: Path) -> None:
    """The parent of jobs run from worker threads (as `lenet paper -j 2` runs its sweeps) gets
    SIGTERM: each job and what it started are killed, and the parent ends with status 143."""
    pid_files = [tmp_path / "a", tmp_path / "b"]
    code = textwrap.dedent(f"""
        import sys, threading
        from lenet.runtime import jobs
        group = jobs.Group()
        def work(path):
            group.run([sys.executable, "-c", {PARENT_OF_ONE!r}, path])
        with jobs.stopped_by_signals():
            workers = [threading.Thread(target=work, args=(p,)) for p in sys.argv[1:]]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        print("not reached")
    """)
    parent = subprocess.Popen([sys.executable, "-c", code, *map(str, pid_files)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        grandchildren = [int(_wait_for(p)) for p in pid_files]
        parent.send_signal(signal.SIGTERM)
        out, err = parent.communicate(timeout=60)
    finally:
        parent.kill()
    assert parent.returncode == 143, err
    assert "not reached" not in out and "Traceback" not in err
    assert all(_wait_gone(pid) for pid in grandchildren)


# A foreground child that writes its pid to argv[1], and on SIGTERM (or SIGHUP) writes the signal
# to argv[1] + ".got" and ends (as torchrun does, stopping its workers); with argv[2] == "deaf"
# it ignores both (stuck).
FOREGROUND_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    def stop(signum, frame):
        open(sys.argv[1] + ".got", "w").write(str(signum))
        raise SystemExit(0)
    deaf = sys.argv[2:] == ["deaf"]
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN if deaf else stop)
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(120)
""")


def _run_foreground_then_signal(tmp_path: Path, sig: int, *child_args: str,
                                 grace: float = 30.0) -> tuple[int, str, int]:
    """A parent running FOREGROUND_CHILD through run_foreground gets `sig` alone (`kill PID`):
    its exit status and stderr, and the child's pid."""
    pid_file = tmp_path / "child"
    code = textwrap.dedent(f"""
        import sys
        from lenet.runtime import jobs
        code = jobs.run_foreground([sys.executable, "-c", {FOREGROUND_CHILD!r}, *sys.argv[1:]],
                                   grace={grace})
        raise SystemExit(code)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code, str(pid_file), *child_args],
                              stderr=subprocess.PIPE, text=True)
    try:
        child = int(_wait_for(pid_file))
        parent.send_signal(sig)
        _, err = parent.communicate(timeout=60)
    finally:
        parent.kill()
    return parent.returncode, err, child


@posix
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_to_the_parent_alone_is_passed_to_the_foreground_child(
        tmp_path: Path, sig: int, status: int) -> None:
    """`kill PID` of `lenet train --nproc 2` reaches the torchrun launcher, which stops its
    workers; the parent waits for it and ends with the signal's status."""
    code, err, child = _run_foreground_then_signal(tmp_path, sig)
    assert code == status and "Traceback" not in err, err
    assert (tmp_path / "child.got").read_text() == str(int(sig))
    assert _wait_gone(child, seconds=5)


@posix
def test_a_foreground_child_that_ignores_the_signal_is_killed_after_the_grace(
        tmp_path: Path) -> None:
    code, err, child = _run_foreground_then_signal(tmp_path, signal.SIGTERM, "deaf", grace=0.5)
    assert code == 143 and "Traceback" not in err, err
    assert not (tmp_path / "child.got").exists()
    assert _wait_gone(child, seconds=5)


def test_a_childs_log_is_never_written_through_a_link_or_blocked_by_a_fifo(tmp_path) -> None:
    """The log path is opened O_NOFOLLOW and non-blocking: a symbolic link there (to a file
    elsewhere) and a FIFO are refused as OSError before the child starts, the link's target
    untouched; a regular file is truncated and written."""
    import os
    import sys

    from lenet.runtime.jobs import Group

    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "train.log"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    argv = [sys.executable, "-c", "print('hello')"]
    for bad in (link, fifo):
        with pytest.raises(OSError):
            Group().run(argv, log=bad, timeout=30)
    assert target.read_text() == "keep me"
    plain = tmp_path / "plain.log"
    plain.write_text("old text that is longer than the new one\n")
    assert Group().run(argv, log=plain, timeout=30).returncode == 0
    assert plain.read_text() == "hello\n"
