"""lenet.data.photo: an MNIST-style digit or string rendered as a photo or scan of ink on paper."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lenet.data.photo import STYLES, render
from lenet.inference.decoding import to_grayscale
from lenet.inference.preprocess import mnist_preprocess


def _digit() -> np.ndarray:
    """A "7": a bar and a slanted stem, white on black, MNIST's 20 px in 28."""
    d = np.zeros((28, 28), np.uint8)
    d[5:8, 6:22] = 255
    for y in range(8, 24):
        x = 21 - (y - 8) // 2
        d[y, x - 1:x + 2] = 255
    return d


@pytest.mark.parametrize("style", STYLES)
def test_dark_ink_on_light_paper_at_scale(style: str) -> None:
    photo = render(_digit(), style, np.random.default_rng(3), scale=4)
    assert photo.shape == (112, 112, 3) and photo.dtype == np.uint8
    gray = to_grayscale(Image.fromarray(photo))
    ink = gray[_upscaled_mask(_digit(), 4)]
    paper = gray[:8].ravel()  # the top rows: MNIST's margin, no ink (nor perspective's)
    assert np.median(paper) > 170  # light paper
    assert np.median(paper) - np.percentile(ink, 10) > 80  # dark ink on it


def _upscaled_mask(d: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(d > 128, np.ones((scale, scale), bool))


@pytest.mark.parametrize("style", STYLES)
def test_deterministic_given_rng_and_different_seeds_differ(style: str) -> None:
    a = render(_digit(), style, np.random.default_rng(7))
    b = render(_digit(), style, np.random.default_rng(7))
    c = render(_digit(), style, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("style", STYLES)
def test_preprocessing_gives_back_the_digit(style: str) -> None:
    """Through lenet's own preprocessing, the photo is the digit again: its 28x28 form
    correlates with the clean digit's (each style degrades it, none loses it)."""
    clean = mnist_preprocess(_digit().astype(np.float64)).ravel()
    for seed in range(3):
        back = mnist_preprocess(to_grayscale(Image.fromarray(
            render(_digit(), style, np.random.default_rng(seed))))).ravel()
        assert np.corrcoef(clean, back)[0, 1] > 0.6, seed


def test_marker_is_thicker_and_ballpoint_thinner() -> None:
    def ink_area(style: str) -> float:
        areas = []
        for seed in range(4):
            gray = to_grayscale(Image.fromarray(render(_digit(), style,
                                                       np.random.default_rng(seed))))
            areas.append((gray < np.median(gray) - 60).mean())
        return float(np.mean(areas))

    assert ink_area("marker") > 1.3 * ink_area("ink") > 1.3 * 1.3 * ink_area("ballpoint")


def test_ruled_lines_cross_the_page() -> None:
    """Rows away from the ink are darker on a rule than between rules: lines run across."""
    blank = np.zeros((28, 28), np.uint8)
    blank[12:16, 12:16] = 255
    gray = to_grayscale(Image.fromarray(render(blank, "ruled", np.random.default_rng(2))))
    side = gray[:, :32].mean(axis=1)  # the left margin: paper and rules only
    assert side.max() - side.min() > 8


def test_jpeg_leaves_blocks_the_other_styles_do_not() -> None:
    """JPEG's 8x8 blocks: a step across block edges larger than inside the blocks."""
    def blockiness(style: str) -> float:
        steps = []
        for seed in range(4):
            g = to_grayscale(Image.fromarray(render(_digit(), style, np.random.default_rng(seed))))
            d = np.abs(np.diff(g, axis=1))
            steps.append(d[:, 7::8].mean() / d.mean())
        return float(np.mean(steps))

    assert blockiness("jpeg") > blockiness("ink") + 0.1


def test_a_string_strip_keeps_its_width() -> None:
    strip = np.zeros((28, 100), np.uint8)
    strip[6:22, 10:14] = strip[6:22, 50:54] = 255
    assert render(strip, "perspective", np.random.default_rng(0), scale=2).shape == (56, 200, 3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"style": "watercolour"}, "unknown photo style"),
    ({"ink": np.zeros((2, 3, 4), np.uint8)}, "2-D"),
    ({"scale": 0}, "scale"),
])
def test_bad_arguments_are_clear_value_errors(kwargs: dict, match: str) -> None:
    args = {"ink": _digit(), "style": "ink", "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(ValueError, match=match):
        render(**args)
