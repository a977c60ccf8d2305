"""Strings of MNIST digits: composing, sampling, the SDNN's flanked windows, the benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from lenet.data import strings as S
from lenet.errors import DatasetError


def _bar(width: int, top: int = 6, bottom: int = 22) -> np.ndarray:
    g = np.zeros((28, 28), np.uint8)
    g[top:bottom, 10:10 + width] = 255
    return g


@pytest.fixture(scope="module")
def mnist_train(mnist_ready: None) -> tuple[np.ndarray, np.ndarray]:
    from lenet.data.datasets import read_split

    images, labels = read_split("mnist", "train")
    return images[:2000], labels[:2000]


def test_compose_gaps_are_between_ink_boxes_and_overlap_combines_by_max():
    strip, boxes = S.compose([_bar(6), _bar(6)], [3], margin=2)
    assert boxes.tolist() == [[2, 8], [11, 17]]
    assert strip.shape == (28, 19)
    assert (strip[6:22, 8:11] == 0).all() and (strip[6:22, 11:17] == 255).all()
    over, boxes = S.compose([_bar(6), _bar(6, 2, 12)], [-2], margin=0)
    assert boxes.tolist() == [[0, 6], [4, 10]]
    assert (over[6:22, 4:6] == 255).all() and (over[2:6, 4:6] == 255).all()


def test_compose_never_buries_a_thin_glyph():
    _, boxes = S.compose([_bar(12), _bar(2)], [-4], margin=0)
    assert boxes[1, 0] == 12 - 1 and boxes[1, 1] > boxes[0, 1]


@pytest.mark.parametrize("bad", [([], []), ([np.zeros((28, 28), np.uint8)], []),
                                 ([np.ones((20, 20), np.uint8)], [])])
def test_compose_refuses_bad_glyphs(bad):
    with pytest.raises(ValueError):
        S.compose(*bad)
    with pytest.raises(ValueError, match="gaps"):
        S.compose([_bar(4), _bar(4)], [])


@pytest.mark.parametrize("spacing", list(S.SPACINGS))
def test_sampled_gaps_follow_the_spacing(mnist_train, spacing):
    images, labels = mnist_train
    s = S.sample_strings(images, labels, 40, (3, 6), spacing, np.random.default_rng(0))
    lo, hi = S.SPACINGS[spacing]
    gaps = np.concatenate([b[1:, 0] - b[:-1, 1] for b in s.boxes])
    assert gaps.max() <= hi and gaps.min() >= lo - 0  # clamping only ever widens a gap
    assert gaps.min() <= lo + 1 and gaps.max() >= hi - 1
    for image, text, boxes in zip(s.images, s.texts, s.boxes, strict=True):
        assert image.shape[0] == 28 and image.dtype == np.uint8
        assert 3 <= len(text) <= 6 and boxes.shape == (len(text), 2)
        assert boxes[0, 0] == 4 and image.shape[1] == boxes[:, 1].max() + 4
        # each box holds ink at its ends: the boxes are the digits' ink columns
        assert (image[:, boxes[:, 0]] >= S.INK).any(axis=0).all()


def test_same_seed_same_strings_and_labels_match_digits(mnist_train):
    images, labels = mnist_train
    a = S.sample_strings(images, labels, 5, 4, "paper", np.random.default_rng(7))
    b = S.sample_strings(images, labels, 5, 4, "paper", np.random.default_rng(7))
    assert a.texts == b.texts
    assert all((x == y).all() for x, y in zip(a.images, b.images, strict=True))
    # a one-digit string is the digit itself, cut to its ink columns
    one = S.sample_strings(images, labels, 20, 1, "paper", np.random.default_rng(1))
    for image, text in zip(one.images, one.texts, strict=True):
        matches = [i for i in np.flatnonzero(labels == int(text))
                   if image.sum() == images[i].astype(np.int64).sum()]
        assert matches, text


def test_points_are_small_dots_on_the_baseline(mnist_train):
    images, labels = mnist_train
    s = S.sample_strings(images, labels, 30, (2, 7), "touching", np.random.default_rng(2),
                         p_point=0.5)
    amounts = [t for t in s.texts if "." in t]
    assert 5 < len(amounts) < 25
    for image, text, boxes in zip(s.images, s.texts, s.boxes, strict=True):
        if "." not in text:
            continue
        assert text.count(".") == 1 and text.index(".") == max(1, len(text) - 3)
        x0, x1 = boxes[text.index(".")]
        assert 1 <= x1 - x0 <= 5
        rows = np.flatnonzero((image[:, x0:x1] >= S.INK).any(axis=1))
        assert rows.min() >= 14  # low in the line, below the digits' middle
        assert boxes[text.index(".") + 1, 0] - x1 >= 1 and x0 - boxes[text.index(".") - 1, 1] >= 1


def test_flanked_windows(mnist_train):
    images, labels = mnist_train
    x, y = S.flanked_windows(images, labels, 400, np.random.default_rng(0), noise=0.0)
    assert x.shape == (400, 28, 32) and x.dtype == np.uint8
    blank = y == S.BLANK
    assert 0.12 < blank.mean() < 0.28 and set(np.unique(y[~blank])) <= set(range(10))
    # a centred digit puts ink in the middle columns; a blank centre mostly leaves them dark
    middle = (x[:, :, 14:18] >= S.INK).sum(axis=(1, 2))
    assert np.median(middle[~blank]) > 3 * np.median(middle[blank]) + 5
    noisy, _ = S.flanked_windows(images, labels, 50, np.random.default_rng(0))
    lit = (noisy == 255).mean() - (x[:50] == 255).mean()
    assert 0.02 < lit < 0.08  # 10 % of pixels salt-and-pepper: about 5 % turned white


def test_pad_batch():
    x, w = S.pad_batch([np.full((28, 5), 7, np.uint8), np.full((28, 10), 9, np.uint8)],
                       multiple=4)
    assert x.shape == (2, 28, 12) and w.tolist() == [5, 10]
    assert (x[0, :, :5] == 7).all() and (x[0, :, 5:] == 0).all() and (x[1, :, 10:] == 0).all()
    with pytest.raises(ValueError):
        S.pad_batch([])


def test_benchmark_part_is_pinned_cached_and_checked(tmp_path, mnist_ready, monkeypatch):
    from lenet.data.datasets import dataset_dir, read_split

    (tmp_path / "mnist").symlink_to(dataset_dir("mnist"))  # MNIST as is, the cache in tmp
    test_images, _ = read_split("mnist", "test")
    part = S.benchmark(tmp_path, parts=["5-touching"])["5-touching"]
    assert len(part) == S.COUNT and all(len(t) == 5 for t in part.texts)
    assert S.digest(part) == S.PINS["5-touching"]
    cached = S.cache_path("5-touching", tmp_path)
    assert cached.is_file() and cached.parent == tmp_path / "strings"
    again = S.benchmark(tmp_path, parts=["5-touching"])["5-touching"]
    assert again.texts == part.texts and S.digest(again) == S.digest(part)
    # built from MNIST's *test* digits: the same seed over the test set gives the same texts
    _, test_labels = read_split("mnist", "test")
    assert S.build_part("5-touching", test_images, test_labels, count=50).texts == part.texts[:50]
    data = bytearray(cached.read_bytes())
    data[-40] ^= 0x01  # one byte changed in the cache
    cached.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"5-touching.*sha256.*delete it"):
        S.benchmark(tmp_path, parts=["5-touching"])
    monkeypatch.setitem(S.PINS, "5-wide", "0" * 64)
    with pytest.raises(DatasetError, match=r"5-wide.*does not match the pinned 0000"):
        S.benchmark(tmp_path, parts=["5-wide"])
    with pytest.raises(DatasetError, match="expected one of"):
        S.benchmark(tmp_path, parts=["7-paper"])


def test_docstring_examples_run():
    import doctest

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    failures, tried = doctest.testmod(S, optionflags=flags)
    assert tried > 10 and failures == 0
