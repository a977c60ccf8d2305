"""Only regular files are read: nothing blocks on a FIFO, nothing large is read whole."""

from __future__ import annotations

import os

import pytest

from lenet.storage import regular, rundir
from tests.reliability.helpers import bounded

posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


@posix
def test_a_fifo_is_refused_at_once_and_named(tmp_path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert regular.special_kind(fifo) == "a FIFO"
    with pytest.raises(regular.NotRegularFile, match="not a regular file but a FIFO"):
        bounded(lambda: regular.read_regular(fifo, 100), 30)


def test_a_link_is_followed_or_refused_as_asked(tmp_path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"abc")
    link = tmp_path / "l"
    link.symlink_to(target)
    assert regular.special_kind(link) == "a symbolic link"
    with regular.open_regular(link) as f:
        assert f.read() == b"abc"
    with pytest.raises(OSError):
        regular.open_regular(link, follow_symlinks=False)


def test_a_file_past_the_limit_is_refused_from_its_size(tmp_path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(10**9)  # sparse: reading it whole would take a gigabyte
    with pytest.raises(regular.FileTooLarge) as e:
        regular.read_regular(big, 1000)
    assert e.value.size == 10**9
    (tmp_path / "small").write_bytes(b"x" * 1000)
    assert regular.read_regular(tmp_path / "small", 1000) == b"x" * 1000


@posix
def test_a_run_dirs_config_that_is_a_fifo_is_one_error_not_a_hang(tmp_path) -> None:
    os.mkfifo(tmp_path / rundir.CONFIG)
    with pytest.raises(rundir.RunDirError, match=r"config\.json"):
        bounded(lambda: rundir.read_config(tmp_path, required=True), 30)
