"""Verified data stays verified only while it is unchanged: edits that keep a file's size and
mtime (`touch -r`, os.utime) are caught, reported by `lenet data info`, and refused by loading.

Real MNIST test files, copied from the data dir into a temp dir and verified there.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lenet import data
from lenet.data.datasets import dataset_dir
from lenet.errors import DatasetError
from tests.commands.cli import lenet

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
