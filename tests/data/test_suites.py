"""lenet.data.suites: the frozen real-input suite (photo, font and drawn parts)."""

from __future__ import annotations

import numpy as np
import pytest

from lenet.data import suites
from lenet.data.suites import (
    MNIST_PARTS,
    PARTS,
    PINS,
    SIZE,
    Part,
    SuiteError,
    build_part,
    digest,
    glyphs,
    real_suite,
    thin,
)


@pytest.mark.parametrize("name", PARTS)
def test_each_part_is_pictures_of_dark_ink_on_light_paper(name: str, mnist_ready: None
                                                           ) -> None:
    part = build_part(name, size=4)
    n, h, w = part.images.shape
    assert n == 4 and part.images.dtype == np.uint8 and h == w and h >= 84
    assert part.labels.dtype == np.int64 and set(part.labels.tolist()) <= set(range(10))
    for img in part.images:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert np.median(border) > 150  # light paper
        assert img.min() < np.median(border) - 80  # dark ink on it


def test_a_smaller_build_is_the_start_of_a_larger_one(mnist_ready: None) -> None:
    small, large = build_part("jpeg", size=3), build_part("jpeg", size=6)
    assert np.array_equal(small.images, large.images[:3])
    assert np.array_equal(small.labels, large.labels[:3])
    assert digest(small) == digest(build_part("jpeg", size=3))


def test_mnist_parts_use_disjoint_test_digits_and_their_labels(mnist_ready: None,
                                                               mnist_test) -> None:
    images, labels = mnist_test
    seen: set[int] = set()
    for name in MNIST_PARTS:
        index = suites._subset(name, len(images))
        assert len(index) == SIZE and not seen & set(index.tolist())
        seen |= set(index.tolist())
    first = suites._subset("ink", len(images))[:5]
    assert build_part("ink", size=5).labels.tolist() == labels[first].tolist()


def test_font_part_cycles_the_digits_over_the_shipped_glyphs() -> None:
    g, fonts = glyphs()
    assert g.shape == (len(fonts), 10, 28, 28) and len(fonts) >= 15
    assert all(len(f["sha256"]) == 64 and f["package"].startswith("fonts-") for f in fonts)
    part = build_part("font", size=20)
    assert part.labels.tolist() == list(range(10)) * 2


def test_drawn_part_is_a_round_pen_on_the_pad(mnist_ready: None) -> None:
    """The page's pad: white, 280 px kept at 140; one pen width (22 px, 11 at half size)
    everywhere along the strokes, unlike MNIST's own pen."""
    pad = build_part("drawn", size=1).images[0]
    assert pad.shape == (140, 140)
    ink = pad < 128
    # The thinnest run of ink across any row is the pen (a stroke seen straight across).
    runs = [len(r) for row in ink for r in np.split(row, np.flatnonzero(np.diff(row)) + 1)
            if r.all() and r.any()]
    assert 8 <= np.median(runs) <= 20


def test_thin_makes_a_one_pixel_skeleton() -> None:
    disk = np.hypot(*np.mgrid[-10:11, -10:11]) <= 8
    ring = disk & ~(np.hypot(*np.mgrid[-10:11, -10:11]) <= 4)
    skeleton = thin(ring)
    assert 0 < skeleton.sum() < ring.sum() / 2
    assert (skeleton <= ring).all()
    assert not skeleton[10, 10]  # the hole stays a hole: a ring thins to a loop


def test_unknown_parts_and_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown suite part"):
        real_suite(["photos"])
    with pytest.raises(ValueError, match="size"):
        build_part("ink", size=0)


def test_every_part_is_pinned() -> None:
    assert set(PINS) == set(PARTS)
    assert all(len(v) == 64 for v in PINS.values())


def test_a_built_part_is_checked_and_cached(mnist_ready: None, tmp_path, monkeypatch) -> None:
    """The full "ink" part (1,000 photos, a couple of seconds) matches its pin, is cached as
    safetensors and read back from the cache, and a wrong pin is a clear error."""
    part = real_suite(["ink"], data_dir=tmp_path)["ink"]
    assert digest(part) == PINS["ink"] and len(part.labels) == SIZE
    cached = tmp_path / "real-suite" / "ink.safetensors"
    assert cached.read_bytes()[:8] != b"\x80\x04\x95"  # never a pickle
    monkeypatch.setattr(suites, "build_part", _must_not_build)
    again = real_suite(["ink"], data_dir=tmp_path)["ink"]
    assert np.array_equal(again.images, part.images)
    monkeypatch.setitem(PINS, "ink", "0" * 64)
    monkeypatch.setattr(suites, "build_part", lambda name, size, data_dir: part)
    with pytest.raises(SuiteError, match=r"part 'ink'.*pinned 0000.*install those versions"):
        real_suite(["ink"], data_dir=tmp_path)


def _must_not_build(*args: object, **kwargs: object) -> Part:
    raise AssertionError("built again although the cache holds the part")
