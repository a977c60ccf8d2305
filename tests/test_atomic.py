"""lenet.atomic: a write replaces the file whole, or (if it fails) leaves the old one as it was."""

from __future__ import annotations

import os

import pytest

from lenet import atomic


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
