"""Verified data stays verified only while it is unchanged: edits that keep a file's size and
mtime (`touch -r`, os.utime) are caught, reported by `lenet data info`, and refused by loading.
Markers and data files that are symlinks or FIFOs are neither written through nor waited on, and
a forged IDX file (a gzip bomb, a header declaring gigabytes) is one DatasetError.

Real MNIST test files, copied from the data dir into a temp dir and verified there.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lenet import data
from lenet.data.datasets import dataset_dir
from lenet.errors import DatasetError
from tests.commands.cli import lenet
from tests.reliability.helpers import bounded

LABELS = "t10k-labels-idx1-ubyte"
IMAGES = "t10k-images-idx3-ubyte"


@pytest.fixture
def verified_copy(mnist_ready: None, tmp_path: Path) -> Path:
    """The MNIST test split in tmp_path/mnist, verified (its markers written there)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        shutil.copy2(dataset_dir("mnist") / name, folder / name)
    files = data.info("mnist", data_dir=tmp_path)["files"]
    assert files[IMAGES] == files[LABELS] == "ok"
    assert (folder / f"{IMAGES}.sha256").is_file() and (folder / f"{LABELS}.sha256").is_file()
    return tmp_path


def edit_keeping_size_and_mtime(path: Path, offset: int, new: np.ndarray) -> None:
    st = path.stat()
    time.sleep(0.03)  # a later edit, past the kernel's coarse clock tick, as a real one is
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(new.astype(np.uint8).tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_changed_labels_are_reported_and_refused(verified_copy: Path) -> None:
    labels_path = verified_copy / "mnist" / LABELS
    labels = np.frombuffer(labels_path.read_bytes(), np.uint8, offset=8)
    edit_keeping_size_and_mtime(labels_path, 8, (labels[:500] + 1) % 10)  # 500 labels wrong

    out = lenet("data", "info", "mnist", "--data-dir", str(verified_copy)).stdout
    status = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:5]}
    assert status[LABELS] == "mismatch" and status[IMAGES] == "ok"
    assert "run `lenet data fetch mnist` to replace them" in out

    with pytest.raises(DatasetError) as e:
        data.load("mnist", "test", data_dir=verified_copy)
    assert str(e.value) == (f"mnist in {verified_copy / 'mnist'}: sha256 mismatch in {LABELS} "
                            "(edited or corrupted since it was fetched); run `lenet data fetch "
                            "mnist` to replace it")


def test_changed_images_are_caught_by_ctime(verified_copy: Path) -> None:
    """The images file is large, so its marker is trusted, but not across a change of ctime."""
    images_path = verified_copy / "mnist" / IMAGES
    centre = 16 + 14 * 28 + 14  # the middle pixel of the first digit
    pixel = images_path.read_bytes()[centre]
    edit_keeping_size_and_mtime(images_path, centre, np.array([255 - pixel]))
    assert data.info("mnist", data_dir=verified_copy)["files"][IMAGES] == "mismatch"
    with pytest.raises(DatasetError, match=f"sha256 mismatch in {IMAGES} "):
        data.load("mnist", "test", data_dir=verified_copy)


# --------------------------------------------------------------------------- hostile data dirs
# The data dir's checksum markers and files are lenet's own: a symlink put in their place is
# replaced, never written through (its target elsewhere stays as it was), and a FIFO neither
# hangs a check nor a read (each case runs in a thread with a bounded wait, so a regression
# fails instead of hanging the suite).
posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


@pytest.fixture
def copied(mnist_ready: None, tmp_path: Path) -> Path:
    """tmp_path/data/mnist holding the real MNIST test split, no markers yet."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in (IMAGES, LABELS):
        shutil.copy2(dataset_dir("mnist") / name, folder / name)
    return folder


def test_a_marker_that_is_a_symlink_is_replaced_not_written_through(copied: Path,
                                                                    tmp_path: Path) -> None:
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text("not lenet's\n")
    marker = copied / f"{IMAGES}.sha256"
    marker.symlink_to(elsewhere)
    assert data.info("mnist", data_dir=copied.parent)["files"][IMAGES] == "ok"
    assert elsewhere.read_text() == "not lenet's\n"
    assert not marker.is_symlink() and marker.read_text().split()[0] == \
        data.datasets.get_spec("mnist").file(IMAGES).sha256


def test_a_forged_marker_behind_a_symlink_is_not_trusted(copied: Path, tmp_path: Path) -> None:
    """A link to a marker that matches (as if written for another copy) proves nothing."""
    images = copied / IMAGES
    data.info("mnist", data_dir=copied.parent)  # writes a real marker
    real = copied / f"{IMAGES}.sha256"
    moved = tmp_path / "marker"
    real.rename(moved)
    edit_keeping_size_and_mtime(images, 16, np.array([1]))
    st = images.stat()
    digest = moved.read_text().split()[0]
    moved.write_text(f"{digest} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n")
    real.symlink_to(moved)
    assert data.info("mnist", data_dir=copied.parent)["files"][IMAGES] == "mismatch"


@posix
def test_a_marker_that_is_a_fifo_does_not_hang(copied: Path) -> None:
    marker = copied / f"{IMAGES}.sha256"
    os.mkfifo(marker)
    info = bounded(lambda: data.info("mnist", data_dir=copied.parent))
    assert info["files"][IMAGES] == "ok"
    assert marker.is_file()  # replaced by a real marker
    images, labels = bounded(lambda: data.load("mnist", "test", data_dir=copied.parent))
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)


@posix
def test_a_data_file_that_is_a_fifo_is_one_line(copied: Path) -> None:
    (copied / LABELS).unlink()
    os.mkfifo(copied / LABELS)
    with pytest.raises(DatasetError, match=LABELS):
        bounded(lambda: data.load("mnist", "test", data_dir=copied.parent,
                                  fetch_missing=False))
    with pytest.raises(DatasetError, match="not a regular file but a FIFO"):
        bounded(lambda: data.read_idx(copied / LABELS))


def test_a_data_file_that_is_a_symlink_to_the_wrong_bytes_is_never_written_through(
        copied: Path, tmp_path: Path) -> None:
    """A link in a data file's place, to something that is not MNIST: its target stays as it
    was (no install follows the link, none replaces it), and fetching says which file to move."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"a user's file, not MNIST")
    source = tmp_path / "source"
    source.mkdir()
    (copied / LABELS).rename(source / LABELS)
    (copied / LABELS).symlink_to(elsewhere)
    from lenet.data.sources import DirectorySource, fetch_files

    spec = data.datasets.get_spec("mnist")
    with pytest.raises(DatasetError, match=f"{LABELS} is a symbolic link, not the verified"):
        fetch_files(spec.split_files("test"), copied, [DirectorySource(source)], dataset="mnist")
    assert elsewhere.read_bytes() == b"a user's file, not MNIST"
    assert (copied / LABELS).is_symlink()
    # A link to the right bytes (a shared copy) is fine: read through, nothing replaced.
    (copied / LABELS).unlink()
    (copied / LABELS).symlink_to(source / LABELS)
    _, labels = data.load("mnist", "test", data_dir=copied.parent, fetch_missing=False)
    assert labels.shape == (10000,) and (copied / LABELS).is_symlink()


@posix
def test_lenet_data_fetch_with_a_fifo_in_place_is_one_line(copied: Path) -> None:
    (copied / LABELS).unlink()
    os.mkfifo(copied / LABELS)
    done = lenet("data", "fetch", "mnist", "--data-dir", str(copied.parent), check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"lenet: error: {copied / LABELS} is a FIFO, not the verified file, and lenet replaces "
        "only regular files; delete it and run `lenet data fetch mnist`"]


def test_an_idx_gzip_bomb_is_one_error_without_the_memory(tmp_path: Path) -> None:
    """Declared 10 values, inflates to 64 MB: refused after reading one byte past the 10."""
    bomb = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x0a")
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="extra bytes"):
            data.read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_an_idx_header_declaring_gigabytes_is_refused_before_reading(tmp_path: Path) -> None:
    header = b"\x00\x00\x0d\x03" + b"".join(n.to_bytes(4, "big") for n in (60000, 1024, 1024))
    for path, payload in ((tmp_path / "big-idx3-ubyte", header + bytes(64)),
                          (tmp_path / "big-idx3-ubyte.gz", gzip.compress(header + bytes(64)))):
        path.write_bytes(payload)
        with pytest.raises(DatasetError, match="more than the limit"):
            data.read_idx(path)
