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
