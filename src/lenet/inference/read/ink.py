"""Ink in a normalized strip: its connected components ("blobs"), the baseline, decimal
points, and a piece of ink made an MNIST digit; shared by the segmenting readers
(:mod:`lenet.inference.read.segment`).

>>> strip = np.zeros((28, 30), np.uint8); strip[4:24, 5:8] = 255; strip[4:24, 15:18] = 255
>>> [(b.x0, b.x1) for b in find_blobs(strip)]
[(5, 8), (15, 18)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenet.inference.preprocess import mnist_preprocess

INK = 51  # what counts as ink: 20 % of white, as preprocess.INK_THRESHOLD
SPECK = 4  # components of fewer ink px are noise (salt), dropped


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image: int32 labels (0 background, 1..n in order
    of their first pixel in row-major order) and n.

    >>> label(np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]], bool))[1]
    2
    """
    h, w = mask.shape
    big = h * w
    lab = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        padded = np.pad(lab, 1, constant_values=big)
        low = lab.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                np.minimum(low, padded[dy:dy + h, dx:dx + w], out=low)
        low = np.where(mask, low, big)
        flat = low.ravel()
        jumped = np.where(mask.ravel(), flat[np.minimum(flat, big - 1)], big).reshape(h, w)
        if np.array_equal(jumped, lab):
            break
        lab = jumped
    roots = np.unique(lab[mask])
    out = np.zeros((h, w), np.int32)
    out[mask] = np.searchsorted(roots, lab[mask]) + 1
    return out, len(roots)


@dataclass
class Blob:
    """A set of components read as one thing: its ink mask and box [x0, x1) x [y0, y1).

    >>> m = np.zeros((28, 10), bool); m[4:24, 3:6] = True
    >>> b = Blob.of(m); (b.x0, b.x1, b.y0, b.y1, b.area, b.centre)
    (3, 6, 4, 24, 60, 4.0)
    """

    mask: np.ndarray
    x0: int
    x1: int
    y0: int
    y1: int

    @classmethod
    def of(cls, mask: np.ndarray) -> Blob:
        """The blob of a mask holding ink."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return cls(mask, int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1)

    @property
    def centre(self) -> float:
        """The column of its centre of mass (of ink px)."""
        cols = self.mask.sum(axis=0)
        return float((cols * np.arange(len(cols))).sum() / cols.sum())

    @property
    def area(self) -> int:
        """Its ink px."""
        return int(self.mask.sum())

    def overlap(self, other: Blob) -> float:
        """Shared columns over the narrower blob's width."""
        shared = min(self.x1, other.x1) - max(self.x0, other.x0)
        return shared / min(self.x1 - self.x0, other.x1 - other.x0)


def find_blobs(strip: np.ndarray) -> list[Blob]:
    """The strip's components, specks dropped, pieces stacked in the same columns merged
    (a broken stroke, a 5's flag), left to right."""
    labels, n = label(strip >= INK)
    blobs = [Blob.of(labels == k) for k in range(1, n + 1)]
    blobs = [b for b in blobs if b.area >= SPECK]
    merged = True
    while merged:
        merged = False
        blobs.sort(key=lambda b: (b.x0, b.x1))
        for i in range(len(blobs)):
            for j in range(i + 1, len(blobs)):
                a, b = blobs[i], blobs[j]
                if a.overlap(b) >= 0.5 and not (dotlike(a, blobs) or dotlike(b, blobs)):
                    blobs[i] = Blob.of(a.mask | b.mask)
                    del blobs[j]
                    merged = True
                    break
            if merged:
                break
    return blobs


def baseline(blobs: list[Blob]) -> float:
    """The row under the line's digits: the median bottom of the blobs big enough to be
    digits (24, MNIST's, if none is).

    >>> m = np.zeros((28, 10), bool); m[4:23, 3:6] = True
    >>> baseline([Blob.of(m)])
    23.0
    """
    big = [b.y1 for b in blobs if b.area >= 30]
    return float(np.median(big)) if big else 24.0


def dotlike(b: Blob, blobs: list[Blob]) -> bool:
    """A decimal point: a small round blob (not one speck) low in the line.

    >>> digit = np.zeros((28, 20), bool); digit[4:24, 3:6] = True
    >>> dot = np.zeros((28, 20), bool); dot[20:24, 10:14] = True
    >>> dotlike(Blob.of(dot), [Blob.of(digit), Blob.of(dot)])
    True
    """
    w, h = b.x1 - b.x0, b.y1 - b.y0
    return (6 <= b.area <= 30 and w <= 7 and h <= 7 and max(w, h) <= 2 * min(w, h) + 1
            and b.y1 >= baseline(blobs) - 3)


def to_digit(strip: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink under `mask` (grown by 1 px to keep the strokes' soft rims) as an MNIST digit:
    uint8 (28, 28), 20 px box, centre of mass at the middle (MNIST's own preprocessing).

    >>> strip = np.zeros((28, 40), np.uint8); strip[4:24, 30:34] = 255
    >>> to_digit(strip, strip > 0).shape
    (28, 28)
    """
    h, w = mask.shape
    grown = np.zeros((h + 2, w + 2), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown[dy:dy + h, dx:dx + w] |= mask
    ink = np.where(grown[1:-1, 1:-1], strip, 0).astype(np.float64)
    cols = np.flatnonzero(ink.any(axis=0))
    crop = np.pad(ink[:, cols[0]:cols[-1] + 1], 2)  # a black border: the ink is the white
    return mnist_preprocess(crop, "segment")
