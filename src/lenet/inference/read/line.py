"""One line of handwriting, made the reader's input: any image in, a (28, W) strip out.

A number is read from a *normalized strip*: uint8 (28, W), white ink on black, the line's ink
about 20 px high with its vertical centre of mass at row 14, as MNIST places its digits (and as
:mod:`lenet.data.strings` composes its numbers, which are such strips already). A picture is
made one as a digit is made MNIST-style (:mod:`lenet.inference.preprocess`: decoded within the
same bounds, made gray, the ink made white, contrast stretched), then:

1. the rows holding ink are grouped into bands; two bands of comparable height are two lines of
   text, refused (:class:`LineError`: crop one line); small specks off the line are dropped;
2. the line's height is measured as its digits' height (a high percentile of each ink column's
   extent, so a decimal point, a tail or the overlap of slanted digits does not count);
3. the line's ink box is scaled so that height is :data:`INK_HEIGHT` px (at most so that the
   whole box fits 28 px), anti-aliased, and placed with its centre of mass at row 14, between
   :data:`MARGIN` px of black each side;
4. its ink is brought to MNIST's level: a blurred photo or a thin pen, once scaled down, leaves
   soft grey strokes where MNIST's are nearly white, so the ink is brightened (never darkened,
   at most :data:`MAX_GAIN` times) until its median level is MNIST's own, :data:`INK_LEVEL`.
   On held-out *training* strings rendered as photos this took a 5-digit reader from 31 % to
   87 % on blurred photos, 57 % to 79 % with a ballpoint pen and 88 % to 92 % in plain ink.

:class:`Line` keeps the scale and offset, so positions in the strip map back to the input
image's pixels. A blank image is a :class:`Line` with an empty strip (it reads as ``""``). A
line wider than :data:`MAX_WIDTH` px once normalized (about 800 digits) is refused before it
is resized, so every step is bounded by the decode limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lenet.inference.decoding import ImageError, decode_gray, read_gray
from lenet.inference.predict import InputError, array_pixels
from lenet.inference.preprocess import (
    BOX,
    CENTRE,
    INK_THRESHOLD,
    SIDE,
    NoInkError,
    median,
    scale_ink,
    white_ink,
)

HEIGHT = SIDE  # the strip's height: MNIST's 28
INK_HEIGHT = BOX  # the digits' height in the strip: MNIST's 20 px box
MARGIN = 4  # black columns each side of the ink, as data.strings composes its numbers
MAX_WIDTH = 20_480  # strip px: about 800 digits; beyond it, crop the line (decoding a line
# costs time in proportion to its columns times its characters)
LINE_SHARE = 0.5  # a band at least this share of the tallest band's height is a line of its own
MERGE_GAP = 0.25  # bands closer than this share of the tallest band are one line (a 5's flag)
HEIGHT_PERCENTILE = 98  # of the ink columns' vertical extents: the digits' height
INK_LEVEL = 231.0  # the median grey level of MNIST's ink (training digits' pixels >= INK_FLOOR)
INK_FLOOR = 26.0  # 10 % of white: fainter pixels are rims, not ink, for the level
MAX_GAIN = 3.0


class LineError(ImageError, ValueError):
    """An image that is not one line of writing (several lines, or a line too long to read)."""


@dataclass(frozen=True)
class Line:
    """A normalized strip and where it came from: strip column ``x`` is the input image's
    column ``offset + x / scale``.

    >>> line = normalize(np.pad(np.full((40, 100), 255.0), 30))   # a white bar on black
    >>> line.strip.shape, line.scale
    ((28, 58), 0.5)
    >>> line.to_input(MARGIN), line.to_input(line.width - MARGIN)  # the bar's ends, input px
    (30, 130)
    """

    strip: np.ndarray  # uint8 (HEIGHT, W); W == 0 for a blank image
    scale: float  # strip px per input px
    offset: float  # the input column of strip column 0
    size: tuple[int, int]  # the input image's (width, height)

    @property
    def width(self) -> int:
        return int(self.strip.shape[1])

    @property
    def blank(self) -> bool:
        """No ink: the image reads as ``""``."""
        return self.width == 0

    def to_input(self, x: float) -> int:
        """Strip column `x` as the input image's column, rounded and clipped to the image."""
        return int(min(max(round(self.offset + x / self.scale), 0), self.size[0]))


def blank(size: tuple[int, int]) -> Line:
    """The :class:`Line` of an image without ink."""
    return Line(np.zeros((HEIGHT, 0), np.uint8), 1.0, 0.0, size)


def strip_line(strip: np.ndarray) -> Line:
    """A normalized strip (uint8 (28, W), white on black), taken as it is."""
    return Line(np.ascontiguousarray(strip, dtype=np.uint8), 1.0, 0.0,
                (int(strip.shape[1]), HEIGHT))


def normalize(gray: np.ndarray, name: str = "image", size: tuple[int, int] | None = None
              ) -> Line:
    """Grey levels (H, W) of any polarity -> the :class:`Line` (see the module's docstring).

    `size` is the input image's (width, height) where `gray` was decoded smaller than it (the
    positions are then scaled back to it)."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"{name}: expected a 2-D grayscale image, got shape {gray.shape}")
    h, w = gray.shape
    size = size or (w, h)
    try:
        ink, _ = white_ink(gray, name)
    except NoInkError:
        return blank(size)
    mask = _solid(ink >= INK_THRESHOLD * 255.0)
    if not mask.any():
        return blank(size)
    top, bottom = _line_rows(mask, name)
    cols = np.flatnonzero(mask[top:bottom].any(axis=0))
    left, right = int(cols[0]), int(cols[-1]) + 1
    box = mask[top:bottom, left:right]
    scale = min(INK_HEIGHT / _digit_height(box), HEIGHT / (bottom - top))
    new_w = max(1, round((right - left) * scale))
    if new_w + 2 * MARGIN > MAX_WIDTH:
        raise LineError(f"{name}: the line is {new_w + 2 * MARGIN} px long once its digits are "
                        f"scaled to {INK_HEIGHT} px high; at most {MAX_WIDTH} px are read (about "
                        f"{MAX_WIDTH // 25} digits): crop or split it")
    new_h = min(HEIGHT, max(1, round((bottom - top) * scale)))
    scaled = scale_ink(ink[top:bottom, left:right], (new_w, new_h), name,
                       f"the line to {INK_HEIGHT} px high")
    per_px = size[0] / w  # input px per decoded px
    return Line(_place(_level(scaled)), scale / per_px, (left - MARGIN / scale) * per_px, size)


def _level(scaled: np.ndarray) -> np.ndarray:
    """The ink brightened until its median level is MNIST's (step 4 of the module docstring)."""
    ink = scaled[scaled >= INK_FLOOR]
    if ink.size == 0:
        return scaled
    gain = min(MAX_GAIN, max(1.0, INK_LEVEL / median(ink)))
    return np.minimum(scaled * gain, 255.0) if gain > 1.0 else scaled


def _solid(mask: np.ndarray) -> np.ndarray:
    """`mask` without isolated pixels (fewer than 2 of their 8 neighbours set): sensor noise
    and salt-and-pepper specks must not make a line taller or add a line."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)  # np.pad costs ten times more here
    padded[1:-1, 1:-1] = mask
    rows = padded[:-2] + padded[1:-1] + padded[2:]  # each pixel's 3x3 sum, in two passes
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return mask & (box >= 3)  # a set pixel and at least 2 of its neighbours


def _bands(rows: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D boolean array, as [start, stop)."""
    padded = np.zeros(len(rows) + 2, dtype=bool)
    padded[1:-1] = rows
    edges = np.flatnonzero(padded[1:] != padded[:-1])  # where a run starts, then stops
    return [(a, b) for a, b in edges.reshape(-1, 2).tolist()]


def _line_rows(mask: np.ndarray, name: str) -> tuple[int, int]:
    """The rows [top, bottom) of the one line of ink in `mask`; several lines are a
    :class:`LineError`."""
    bands = _bands(np.asarray(mask.any(axis=1)))
    tallest = max(b - a for a, b in bands)
    merged = [bands[0]]
    for a, b in bands[1:]:
        if a - merged[-1][1] < MERGE_GAP * tallest:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    tallest = max(b - a for a, b in merged)
    lines = [(a, b) for a, b in merged if b - a >= LINE_SHARE * tallest]
    if len(lines) > 1:
        raise LineError(f"{name}: found {len(lines)} lines of ink; a number is read from one "
                        "line: crop the image to the line to read")
    return lines[0]


def _digit_height(box: np.ndarray) -> float:
    """The digits' height in a line's ink box: a high percentile of the inked columns'
    extents (top ink to bottom ink), so that a '.' or the overlap of two digits set at
    different heights does not count."""
    inked = box.any(axis=0)
    tops = box.argmax(axis=0)[inked]
    bottoms = box.shape[0] - box[::-1].argmax(axis=0)[inked]
    extents = np.sort(bottoms - tops)  # np.percentile's linear rule, at a tenth of its cost
    k = (len(extents) - 1) * HEIGHT_PERCENTILE / 100
    lo = int(k)
    hi = min(lo + 1, len(extents) - 1)
    return max(1.0, float(extents[lo] + (k - lo) * (extents[hi] - extents[lo])))


def _place(scaled: np.ndarray) -> np.ndarray:
    """The scaled line into (HEIGHT, MARGIN + w + MARGIN), its centre of mass at row 14."""
    h, w = scaled.shape
    rows = scaled.sum(axis=1)
    cy = float((rows * np.arange(h)).sum() / rows.sum())
    top = min(max(round(CENTRE - cy), 0), HEIGHT - h)
    out = np.zeros((HEIGHT, w + 2 * MARGIN), np.uint8)
    out[top:top + h, MARGIN:MARGIN + w] = np.rint(scaled)  # in 0..255 already
    return out


# --------------------------------------------------------------------------- any input
def to_line(x: Any, name: str = "input") -> Line:
    """One input of any kind a :class:`~lenet.inference.predict.Predictor` takes -> its
    :class:`Line`: an image file's path or bytes, a PIL image, an array or tensor of one image.

    An array or tensor 28 px high, gray, white ink on black, is a normalized strip already
    (as :func:`lenet.data.strings.compose` makes them) and is taken as it is; any other is a
    picture. Every refusal is an :class:`~lenet.inference.decoding.ImageError` naming it.

    >>> strip = np.zeros((28, 60), np.uint8); strip[4:24, 20:23] = 255
    >>> to_line(strip).strip is strip or bool((to_line(strip).strip == strip).all())
    True
    >>> to_line(np.full((50, 200), 255, np.uint8)).blank    # white paper, no ink
    True
    """
    if isinstance(x, (str, os.PathLike)):
        return normalize(*_read(x, str(x)))
    if isinstance(x, (bytes, bytearray, memoryview)):
        return normalize(*_read(bytes(x), name))
    if isinstance(x, Image.Image):
        gray, footprint = decode_gray(x, name)
        return normalize(gray, name, (footprint.width, footprint.height))
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        pixels, single = array_pixels(x, name)
        if not single:
            raise InputError(f"{name}: a batch of {len(pixels)} images where one was expected; "
                             "give a list of images to read several")
        return pixels_line(pixels[0], name)
    raise InputError(f"{name}: got {type(x).__name__}; expected an image file's path or "
                     "bytes, a PIL image, or a numpy array or torch tensor of one image")


def _read(source: str | os.PathLike[str] | bytes, name: str
          ) -> tuple[np.ndarray, str, tuple[int, int]]:
    gray, footprint = read_gray(source, name)
    return gray, name, (footprint.width, footprint.height)


def pixels_line(pixels: np.ndarray, name: str = "input") -> Line:
    """uint8 (H, W, C) gray levels -> a Line: a dark-bordered 28-high gray strip as it is."""
    h, w, c = pixels.shape
    if c == 1 and h == HEIGHT:
        strip = pixels[..., 0]
        border = np.concatenate([strip[0], strip[-1], strip[:, 0], strip[:, -1]])
        if median(border) <= 127.5:
            if w > MAX_WIDTH:
                raise LineError(f"{name}: a strip {w} px long; at most {MAX_WIDTH} px are "
                                f"read (about {MAX_WIDTH // 25} digits): crop or split it")
            if not (strip >= INK_THRESHOLD * 255.0).any():
                return blank((w, h))
            return strip_line(strip)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels, mode)
    gray, _ = decode_gray(img, name)
    return normalize(gray, name)

