"""`lenet read`'s files (:func:`lenet.inference.files.read_files`): one result per file in the
order given, a bad file failing alone, and the same answers whatever the chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet.data.strings import Strings, sample_strings
from lenet.inference import files
from lenet.inference.read import reader as reader_module
from lenet.inference.read.reader import Reader
from lenet.runtime import workers


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def _numbers(folder: Path, mnist_test, count: int, length: int, seed: int,
             bad: tuple[str, bytes]) -> Strings:
    """`count` numbers of MNIST test digits as PNG files in `folder`, and one bad file."""
    s = sample_strings(*mnist_test, count, length, "paper", np.random.default_rng(seed))
    for i, strip in enumerate(s.images):
        Image.fromarray(255 - strip).save(folder / f"{i:02d}.png")
    (folder / bad[0]).write_bytes(bad[1])
    return s


def test_chunks_are_read_in_order_and_bad_files_fail_alone(
        tmp_path: Path, mnist_test, reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _numbers(tmp_path, mnist_test, 10, 3, 0, bad=("05b.png", b"not an image"))
    one = files.read_files(reader, [str(tmp_path)])  # one chunk
    monkeypatch.setattr(files, "READ_CHUNK", 4)  # 11 files: three chunks
    two = files.read_files(reader, [str(tmp_path), str(tmp_path / "missing.png")])
    assert [r["file"] for r in two[1:]] == [r["file"] for r in one]
    assert two[0] == {"file": str(tmp_path / "missing.png"), "error": "no such file or directory"}
    assert two[1:] == one
    bad = [r for r in one if "error" in r]
    assert len(bad) == 1 and bad[0]["file"].endswith("05b.png")
    texts = [r["text"] for r in one if "error" not in r]
    assert len(texts) == 10
    assert np.mean([a == b for a, b in zip(texts, s.texts, strict=True)]) >= 0.8


@pytest.mark.skipif(not workers.can_fork(), reason="this system does not fork")
def test_workers_read_the_same_in_the_same_order(
        tmp_path: Path, mnist_test, reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    _numbers(tmp_path, mnist_test, 9, 4, 1, bad=("03b.png", b"\x89PNG junk"))
    here = files.read_files(reader, [str(tmp_path)])
    monkeypatch.setattr(reader_module, "PER_WORKER", 3)  # 10 files: three workers' shares
    shared = files.read_files(Reader(workers=3), [str(tmp_path)])
    assert [r["file"] for r in shared] == [r["file"] for r in here]
    assert [r.get("text") for r in shared] == [r.get("text") for r in here]
    assert [r.get("error") for r in shared] == [r.get("error") for r in here]
    assert sum("error" in r for r in shared) == 1
    for a, b in zip(shared, here, strict=True):  # one thread a worker: the sums' order may
        assert a.get("confidence") == pytest.approx(b.get("confidence"), abs=1e-5)  # differ
