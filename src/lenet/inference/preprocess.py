"""Real handwriting made MNIST-style: an image file in, a 28x28 digit out, with MNIST's own
preprocessing.

MNIST's digits were made this way (LeCun et al.): size-normalized to fit a 20x20 box keeping the
aspect ratio, anti-aliased, then centred in a 28x28 field by their centre of mass. A photo or a
scan only looks like an MNIST digit after the same steps, which :func:`mnist_preprocess` applies
(and :func:`mnist_trace` applies keeping every step, for the web page to show):

1. alpha composited on white, then grayscale (any mode Pillow converts: L, RGB, RGBA, P, 1,
   I;16, CMYK, ...; one it cannot, such as LAB, is an
   :class:`~lenet.inference.decoding.UnsupportedImageError`);
2. inverted when the background is light (decided from the border pixels), so ink is white;
3. contrast stretched so the background is 0 and the strongest ink 255, faint noise zeroed;
4. cropped to the ink's bounding box;
5. the longest side scaled to 20 px keeping the aspect ratio, anti-aliased (Lanczos), and the
   peak brought back to 255 (every MNIST digit peaks at 254-255);
6. pasted into 28x28 so that the centre of mass sits at (14, 14) (MNIST's own mean);

then the model's own normalization and padding from the weights' metadata
(:mod:`lenet.inference.predict`).

The image is decoded within bounds first (:mod:`lenet.inference.decoding`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lenet.inference.decoding import ImageError, decode_gray, open_image, to_grayscale

BOX = 20  # MNIST's size-normalization box
SIDE = 28
CENTRE = 14.0  # where MNIST's centres of mass sit (mean over the test set: 13.99, 14.00)
INK_THRESHOLD = 0.2  # of the stretched range: what counts as ink for the bounding box
NOISE_FLOOR = 0.08  # of the stretched range: zeroed as paper texture / sensor noise
MIN_CONTRAST = 24.0  # gray levels between background and strongest ink, else "no ink"
SORT_BELOW = 2048  # median(): values sorted up to this many, else partitioned


class NoInkError(ImageError):
    pass


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def median(values: np.ndarray) -> float:
    """``np.median`` of finite values, the same number at a quarter of its cost (every file
    read pays three: the reading speed of ``lenet read`` rests on it).

    >>> [median(np.array(v, float)) for v in ([3, 1, 2], [4, 1, 3, 2], [7])]
    [2.0, 2.5, 7.0]
    """
    flat = np.ravel(values)
    k = flat.size // 2
    # Sorted when short (a line's ink, a border: sorting a few hundred numbers costs less than
    # partitioning them); the middle values are the same either way.
    ordered = np.sort(flat) if flat.size <= SORT_BELOW else np.partition(flat, (k - 1, k))
    if flat.size % 2:
        return float(ordered[k])
    return float((ordered[k - 1] + ordered[k]) / 2)


@dataclass(frozen=True)
class Trace:
    """The steps of :func:`mnist_trace`, each as the digit was made from it (float64 (H, W) grey
    levels unless said otherwise); numbered as in the module's docstring."""

    gray: np.ndarray  # 1. the grayscale image
    inverted: bool  # 2. the paper was light: the ink was made white
    white: np.ndarray  # 2. white ink on black
    ink: np.ndarray  # 3. contrast stretched to 0..255, faint noise zeroed
    box: tuple[int, int, int, int]  # 4. the ink's bounding box: top, left, bottom, right
    scaled: np.ndarray  # 5. the ink in the box, longest side 20 px, peak 255, rounded
    digit: np.ndarray  # 6. uint8 (28, 28): `scaled` placed by its centre of mass

    @property
    def crop(self) -> np.ndarray:
        """`white` cut to the ink's box (a picture of step 4)."""
        top, left, bottom, right = self.box
        return self.white[top:bottom, left:right]


def mnist_preprocess(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale (H, W) of any size -> uint8 (28, 28), white ink on black, as MNIST was made."""
    return mnist_trace(gray, name).digit


def mnist_trace(gray: np.ndarray, name: str = "image") -> Trace:
    """:func:`mnist_preprocess`, keeping every step on the way (see :class:`Trace`)."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"{name}: expected a 2-D grayscale image, got shape {gray.shape}")
    ink, inverted = white_ink(gray, name)
    white = 255.0 - gray if inverted else gray
    box = _ink_box(ink)
    top, left, bottom, right = box
    scaled = _scale_to_box(ink[top:bottom, left:right], name)
    return Trace(gray, inverted, white, ink, box, scaled, _place(scaled))


def white_ink(gray: np.ndarray, name: str = "image") -> tuple[np.ndarray, bool]:
    """Steps 2 and 3 (shared with the line reader, :mod:`lenet.inference.read.line`): float
    (H, W) grey levels -> the ink, white on black and stretched to 0..255, and whether the
    paper was light (inverted); a blank image is a :class:`NoInkError`."""
    border = _border(gray)
    inverted = median(border) > 127.5  # light paper, dark ink: make ink white
    if inverted:
        return _stretch(255.0 - gray, name, 255.0 - border), True
    return _stretch(gray, name, border), False


def _stretch(white: np.ndarray, name: str, border: np.ndarray) -> np.ndarray:
    """Background (the median of `border`, white's) to 0, the strongest ink to 255, faint noise
    to 0."""
    background = median(border)
    peak = float(white.max())
    if peak - background < MIN_CONTRAST:
        raise NoInkError(f"{name}: no ink found (the image is blank or has too little contrast)")
    # In place: at WORK_PIXELS each temporary array would be 16 MB more at the peak.
    ink = white - background
    ink *= 255.0 / (peak - background)
    np.minimum(ink, 255.0, out=ink)
    ink[ink < NOISE_FLOOR * 255.0] = 0.0  # faint noise, and all below the background
    return ink


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box of what counts as ink (never empty: the peak is 255)."""
    rows = np.flatnonzero((ink >= INK_THRESHOLD * 255.0).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD * 255.0).any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _scale_to_box(crop: np.ndarray, name: str) -> np.ndarray:
    """The longest side to BOX px (Lanczos), the peak to 255, rounded to whole grey levels."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    return scale_ink(crop, (max(1, round(w * scale)), max(1, round(h * scale))), name,
                     f"the digit to {BOX} px")


def scale_ink(crop: np.ndarray, size: tuple[int, int], name: str = "image",
              what: str = "it") -> np.ndarray:
    """Ink resized to `size` (width, height; Lanczos), the peak to 255, rounded to whole grey
    levels (float64); a :class:`NoInkError` if none is left (after scaling `what`)."""
    # frombuffer and tobytes: the same pixels as fromarray and asarray, at half their cost
    # (every file `lenet read` reads pays them).
    h, w = crop.shape
    small = Image.frombuffer("F", (w, h), np.ascontiguousarray(crop, dtype=np.float32), "raw",
                             "F", 0, 1).resize(size, Image.Resampling.LANCZOS)
    digit = np.frombuffer(small.tobytes(), np.float32).reshape(size[1], size[0]).astype(
        np.float64)
    np.clip(digit, 0.0, 255.0, out=digit)
    peak = digit.max()
    if peak <= 0:
        raise NoInkError(f"{name}: no ink left after scaling {what}")
    digit *= 255.0 / peak  # every MNIST digit peaks at 254-255; thin strokes fade
    # Rounded to the gray levels it is stored with *before* the centre of mass is measured, so
    # that the whole-pixel placement in _place puts the stored digit's centre within 0.5 px of 14.
    return np.rint(digit)


def _place(digit: np.ndarray) -> np.ndarray:
    """`digit` pasted into SIDE x SIDE with its centre of mass at (CENTRE, CENTRE), as uint8."""
    new_h, new_w = digit.shape
    mass = digit.sum()
    cy = float((digit.sum(axis=1) * np.arange(new_h)).sum() / mass)
    cx = float((digit.sum(axis=0) * np.arange(new_w)).sum() / mass)
    top = min(max(round(CENTRE - cy), 0), SIDE - new_h)
    left = min(max(round(CENTRE - cx), 0), SIDE - new_w)
    out = np.zeros((SIDE, SIDE), dtype=np.float64)
    out[top:top + new_h, left:left + new_w] = digit
    return np.rint(out).astype(np.uint8)


def preprocess_image(source: str | os.PathLike[str] | bytes, name: str | None = None
                     ) -> np.ndarray:
    """An image file (path or bytes) -> uint8 (28, 28) white-on-black MNIST-style digit."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    img = open_image(source, label)
    try:
        return mnist_preprocess(to_grayscale(img, label), label)
    finally:
        img.close()


def preprocess_opened(img: Image.Image, name: str = "image") -> np.ndarray:
    """A PIL image the caller opened (lazily, as ``Image.open`` does, or already loaded) ->
    uint8 (28, 28) MNIST-style digit, with :func:`preprocess_image`'s checks and bounded
    decode (a large JPEG not yet loaded is switched to reduced-size decoding, ``draft``)."""
    return mnist_preprocess(decode_gray(img, name)[0], name)


def preprocess_pixels(pixels: Any, name: str = "pixels") -> np.ndarray:
    """784 numbers 0-255 (white ink on black, row-major) -> the MNIST-style 28x28 digit."""
    arr = np.asarray(pixels, dtype=np.float64)
    if arr.size != SIDE * SIDE:
        raise ImageError(f"{name}: expected {SIDE * SIDE} pixels, got {arr.size}")
    arr = arr.reshape(SIDE, SIDE)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise ImageError(f"{name}: pixel values must be numbers in 0..255")
    # Already white-on-black by contract: never invert, even if the border happens to be lit.
    if median(_border(arr)) > 127.5:
        raise ImageError(f"{name}: expected white ink on a black background")
    return mnist_preprocess(arr, name)
