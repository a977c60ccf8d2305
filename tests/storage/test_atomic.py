"""lenet.storage.atomic: a write replaces the file whole, or (if it fails) leaves the old one as
it was."""

from __future__ import annotations

import errno
import os

import pytest

from lenet.errors import OutputError
from lenet.storage import atomic


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old contents, longer than the new ones")
    assert atomic.write_bytes(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert atomic.write_text(str(target), "text, é") == target  # a str path works too
    assert target.read_text(encoding="utf-8") == "text, é"
    assert _leftovers(tmp_path) == []


def test_parent_folders_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    atomic.write_text(target, "deep")
    assert target.read_text() == "deep"


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, step):
    target = tmp_path / "metrics.csv"
    target.write_bytes(b"intact")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, step, fail)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_bytes(target, b"half-written")
    monkeypatch.undo()
    assert target.read_bytes() == b"intact"
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"intact")
    with pytest.raises(TypeError):
        atomic.write_bytes(target, "text where bytes belong")  # type: ignore[arg-type]
    assert target.read_bytes() == b"intact"
    assert _leftovers(tmp_path) == []


def test_an_interrupt_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    """Even a KeyboardInterrupt (not an Exception) cleans up the temp file."""
    target = tmp_path / "config.json"
    target.write_text("{}")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(target, '{"new": 1}')
    monkeypatch.undo()
    assert target.read_text() == "{}"
    assert _leftovers(tmp_path) == []


# ensure_writable: the check a command makes before its work, so a bad --out fails at once.


def test_ensure_writable_accepts_a_new_file_and_creates_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "model.onnx"
    assert atomic.ensure_writable(target) == target
    assert atomic.ensure_writable(str(tmp_path / "x.onnx")) == tmp_path / "x.onnx"
    assert list(tmp_path.iterdir()) == []  # no parent made, no temp file left


def test_ensure_writable_accepts_an_existing_file_and_keeps_it(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    assert atomic.ensure_writable(target) == target
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def _refused(path, fix: str | None = None) -> str:
    with pytest.raises(OutputError) as e:
        atomic.ensure_writable(path) if fix is None else atomic.ensure_writable(path, fix=fix)
    msg = str(e.value)
    assert msg.startswith(f"cannot write {path}: ") and "\n" not in msg
    assert msg.endswith(f"; {fix or 'choose another path with --out'}")
    return msg


def test_ensure_writable_refuses_a_directory(tmp_path):
    assert "is a directory" in _refused(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ensure_writable_refuses_a_path_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    assert f"{tmp_path / 'plain'} is not a directory" in _refused(tmp_path / "plain" / "x.onnx")


def test_ensure_writable_refuses_a_path_under_a_symlink_loop(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert "broken symbolic link" in _refused(tmp_path / "loop" / "x.onnx")


def test_ensure_writable_refuses_a_device(tmp_path):
    if not os.path.exists(os.devnull):
        pytest.skip("no null device")
    assert "not a regular file" in _refused(os.devnull, "pick a file name")


def test_ensure_writable_refuses_a_read_only_file_system(tmp_path, monkeypatch):
    import tempfile

    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    msg = _refused(tmp_path / "m.onnx")
    assert f"{tmp_path} is not writable ({os.strerror(errno.EROFS)})" in msg


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a mode-555 folder anyway")
def test_ensure_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert "not writable (Permission denied)" in _refused(folder / "sub" / "m.onnx")
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_ensure_writable_refuses_sysfs_even_as_root():
    """sysfs refuses new files to every user, root included: a real read-only place."""
    assert "/sys/kernel is not writable" in _refused("/sys/kernel/lenet-test/m.onnx")


def test_a_written_file_gets_the_mode_open_would_give(tmp_path) -> None:

    from lenet.storage import atomic

    path = atomic.write_bytes(tmp_path / "f.bin", b"x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK  # not mkstemp's 0600
