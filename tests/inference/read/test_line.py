"""Any image of one line -> the normalized (28, W) strip, positions mapping back to the input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lenet.data.strings import sample_strings
from lenet.inference.decoding import ImageError, NotAnImageError
from lenet.inference.predict import InputError
from lenet.inference.read.line import (
    HEIGHT,
    INK_HEIGHT,
    MARGIN,
    MAX_WIDTH,
    Line,
    LineError,
    normalize,
    to_line,
)


@pytest.fixture(scope="module")
def strings(mnist_test):
    images, labels = mnist_test
    return sample_strings(images[:2000], labels[:2000], 30, 5, "paper",
                          np.random.default_rng(3))


def _picture(strip: np.ndarray, scale: int, at: tuple[int, int], canvas: tuple[int, int]
             ) -> Image.Image:
    """`strip` as dark ink on light paper, `scale` times larger, pasted at `at` (x, y)."""
    h, w = strip.shape
    big = Image.fromarray(255 - strip).resize((w * scale, h * scale), Image.Resampling.BILINEAR)
    page = Image.new("L", canvas, 255)
    page.paste(big, at)
    return page


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _ink_rows(strip: np.ndarray) -> np.ndarray:
    return np.flatnonzero((strip >= 51).any(axis=1))


def test_a_composed_strip_is_taken_as_it_is(strings) -> None:
    for strip in strings.images[:5]:
        line = to_line(strip)
        assert np.array_equal(line.strip, strip)
        assert (line.scale, line.offset, line.size) == (1.0, 0.0, (strip.shape[1], HEIGHT))
        assert line.to_input(7.2) == 7
    as_tensor = to_line(torch.from_numpy(strings.images[0]).float() / 255)  # (28, W) in [0, 1]
    assert np.abs(as_tensor.strip.astype(int) - strings.images[0]).max() <= 1


def test_a_photo_of_a_strip_comes_back_close_to_it(strings) -> None:
    """Dark ink on light paper, 3x larger, off-centre on a bigger page: the normalized strip
    has the digits 20 px high, the ink's centre of mass at row 14, and the digits' boxes map
    back to where they were drawn in the page."""
    for k, strip in enumerate(strings.images[:10]):
        at = (37 + 5 * k, 21 + k)
        line = to_line(_png(_picture(strip, 3, at, (3 * strip.shape[1] + 120, 140))), "p.png")
        out = line.strip
        assert out.shape[0] == HEIGHT and out.dtype == np.uint8
        rows = out.astype(np.float64).sum(axis=1)
        assert abs((rows * np.arange(HEIGHT)).sum() / rows.sum() - 14.0) <= 1.0
        assert abs(line.scale - 1 / 3) < 0.06  # the 3x page back to MNIST's size
        assert abs(out.shape[1] - strip.shape[1]) <= 6
        assert (out[:, :MARGIN] == 0).all() and (out[:, -MARGIN:] == 0).all()
        for x0, x1 in strings.boxes[k]:  # each digit's ink, in the page's pixels
            assert abs(line.to_input(x0) - (at[0] + 3 * x0)) <= 9
            assert abs(line.to_input(x1) - (at[0] + 3 * x1)) <= 9


def test_height_is_the_digits_not_the_decimal_point_nor_the_stagger() -> None:
    """Two 1s set 6 px apart vertically: the line is 26 px of ink, but each digit is 20
    (and 1s set 15 px apart are made smaller than that, to fit the 28 rows)."""
    strip = np.zeros((40, 60), np.uint8)
    strip[5:25, 10:13] = 255
    strip[11:31, 30:33] = 255
    strip[29:32, 45:48] = 255  # a point on the baseline
    assert normalize(strip).scale == 1.0
    strip[11:31, 30:33] = 0
    strip[20:40, 30:33] = 255
    assert normalize(strip).scale == pytest.approx(HEIGHT / 35)
    strip = np.zeros((60, 90), np.uint8)
    strip[10:50, 20:26] = 255
    strip[10:50, 60:66] = 255
    strip[46:50, 40:44] = 255
    assert normalize(strip).scale == pytest.approx(INK_HEIGHT / 40)


def test_polarity_and_colour_do_not_matter(strings) -> None:
    strip = strings.images[0]
    page = np.full((90, strip.shape[1] * 2 + 40), 0, np.uint8)
    big = np.asarray(Image.fromarray(strip).resize((strip.shape[1] * 2, 56)))
    page[17:73, 20:20 + big.shape[1]] = big
    white_on_black = to_line(page).strip
    black_on_white = to_line(255 - page).strip
    rgb = to_line(np.stack([255 - page] * 3, axis=-1)).strip
    assert np.array_equal(white_on_black, black_on_white)
    assert np.array_equal(black_on_white, rgb)


def test_blank_images_are_blank_lines() -> None:
    for blank in (np.full((60, 300), 255, np.uint8), np.zeros((28, 80), np.uint8),
                  np.random.default_rng(0).integers(120, 135, (50, 200)).astype(np.uint8)):
        line = to_line(blank)
        assert line.blank and line.strip.shape == (HEIGHT, 0)
    assert to_line(_png(Image.new("RGB", (400, 100), "white"))).blank


def test_specks_off_the_line_are_dropped_but_two_lines_are_refused() -> None:
    page = np.full((200, 300), 255, np.uint8)
    page[60:100, 40:50] = 0
    page[60:100, 120:130] = 0
    page[20:23, 200:203] = 0  # a speck far above the line
    line = normalize(page)
    assert line.scale == pytest.approx(INK_HEIGHT / 40)
    assert line.width == round(90 * line.scale) + 2 * MARGIN
    page[140:180, 60:70] = 0  # a second line of the same height
    with pytest.raises(LineError, match=r"found 2 lines of ink.*crop"):
        normalize(page, "page.png")


def test_a_line_too_long_is_refused_before_it_is_scaled() -> None:
    with pytest.raises(LineError, match=f"at most {MAX_WIDTH} px"):
        to_line(np.zeros((28, MAX_WIDTH + 1), np.uint8) + np.eye(28, MAX_WIDTH + 1,
                                                                 dtype=np.uint8) * 255)
    thin = np.full((20, 1_000_000 // 20), 255, np.uint8)  # a 2 px line scaled 10x: 500,000
    thin[9:11, :] = 0
    with pytest.raises(LineError, match="once its digits are scaled"):
        to_line(thin, "thin.png")


def test_line_maps_positions_and_clips() -> None:
    line = Line(np.zeros((28, 50), np.uint8), 0.5, 10.0, (100, 60))
    assert (line.to_input(0), line.to_input(20), line.to_input(1000)) == (10, 50, 100)
    assert line.to_input(-100) == 0


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(NotAnImageError, match="junk: not an image"):
        to_line(b"not an image at all", "junk")
    with pytest.raises(InputError, match="a batch of 2"):
        to_line(np.zeros((2, 28, 40, 1), np.uint8))
    with pytest.raises(InputError, match="expected an image"):
        to_line(3.5)
    with pytest.raises(ImageError):
        to_line(np.full((28, 40), np.nan))


def test_soft_strokes_are_brought_to_mnists_ink_level(strings, monkeypatch) -> None:
    """A blurred photo leaves grey strokes once scaled down: their median level is raised
    towards MNIST's own (231); ink that is already bright is never darkened."""
    from lenet.data.photo import render
    from lenet.inference.read import line

    for k, strip in enumerate(strings.images[:5]):
        photo = render(strip, "blur", np.random.default_rng(k))
        out = to_line(photo).strip
        with monkeypatch.context() as m:
            m.setattr(line, "MAX_GAIN", 1.0)  # the level step off
            soft = to_line(photo).strip
        assert np.median(soft[soft >= 26]) < 170
        assert 190 <= np.median(out[out >= 26]) <= 240
    bright = np.zeros((60, 200), np.uint8)
    bright[10:50, 20:30] = 255
    bright[10:50, 80:84] = 255
    out = normalize(bright).strip
    assert np.median(out[out >= 26]) == 255
