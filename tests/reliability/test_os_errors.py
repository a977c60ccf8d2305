"""The environment says no (a read-only place, a directory where a file belongs, a full disk, a
file where the data dir belongs, a symlink loop): `lenet` answers with one line and status 2.

Every case runs `lenet` as a user does (a subprocess) on a real obstacle, not a mock. Read-only
places: a mode-555 folder for a normal user; root writes through modes, so for root the folder
is made immutable (`chattr +i`), which stops root too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.commands.cli import TIMEOUT, lenet


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make `folder` unwritable for whoever runs the tests; yields the reason writes get."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield os.strerror(13)  # EACCES
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("root, and this file system has no immutable flag: nothing is read-only")
    try:
        yield os.strerror(1)  # EPERM: "Operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True, timeout=30)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("lenet: error: ")
    return proc.stderr.removeprefix("lenet: error: ").rstrip("\n")


# --------------------------------------------------------------------------- outputs
def test_export_to_a_read_only_folder(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "ro" / "model.onnx"
    target.parent.mkdir()
    with read_only(target.parent) as reason:
        line = one_line_error(lenet("export", str(run_dir), "-o", str(target), check=False))
    assert line == (f"cannot write {target}: {target.parent} is not writable ({reason}); "
                    "choose another path with --out")
    assert list(target.parent.iterdir()) == []


def test_export_to_a_directory(run_dir: Path, tmp_path: Path) -> None:
    line = one_line_error(lenet("export", str(run_dir), "-o", str(tmp_path), check=False))
    assert line == (f"cannot write {tmp_path}: it is a directory (give a file name); "
                    "choose another path with --out")


def test_report_on_a_read_only_run_dir_fails_before_any_work(run_dir: Path,
                                                              tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = sorted(p.name for p in run.iterdir())
    with read_only(run) as reason:
        line = one_line_error(lenet("report", str(run), "--device", "cpu", check=False))
    assert line == (f"cannot write {run / 'report.html'}: {run} is not writable ({reason}); "
                    "copy the run directory somewhere writable and report on the copy")
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_stdout_is_one_line() -> None:
    """`lenet data info > file` on a full disk: the write fails deep in print(); one line, 2.

    Python buffers stdout when it is not a terminal (PYTHONUNBUFFERED unset, as for users),
    so the failure comes at the final flush, where the interpreter would otherwise report
    "Exception ignored" and exit 120."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "lenet", "data", "info", "mnist"],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                              timeout=TIMEOUT)
    assert one_line_error(proc) == "cannot write <standard output>: No space left on device"


# --------------------------------------------------------------------------- data dir
def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "notes.txt"
    not_a_dir.write_text("a file")
    line = one_line_error(lenet("data", "info", "mnist", "--data-dir", str(not_a_dir),
                                check=False))
    assert line == (f"--data-dir {not_a_dir} is not a directory; point --data-dir (or "
                    "$LENET_DATA_DIR) at a directory")


def test_symlink_loops_in_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    labels.symlink_to(labels.name)  # points at itself
    line = one_line_error(lenet("data", "info", "mnist", "--data-dir", str(tmp_path),
                                check=False))
    assert line == (f"{labels}: cannot read it (Too many levels of symbolic links); delete it "
                    "and run `lenet data fetch mnist`")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    line = one_line_error(lenet("data", "fetch", "--data-dir", str(loop), check=False))
    assert line == (f"--data-dir {loop}: Too many levels of symbolic links; point --data-dir "
                    "(or $LENET_DATA_DIR) at a directory")
