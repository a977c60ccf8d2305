"""Ink in a strip: 8-connected components and blobs."""

from __future__ import annotations

from collections import deque

import numpy as np

from lenet.inference.read import ink


def _bfs_count(mask: np.ndarray) -> int:
    seen = np.zeros_like(mask)
    n = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        n += 1
        todo = deque([start])
        seen[start] = True
        while todo:
            y, x = todo.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    v, u = y + dy, x + dx
                    if 0 <= v < mask.shape[0] and 0 <= u < mask.shape[1] and mask[v, u] \
                            and not seen[v, u]:
                        seen[v, u] = True
                        todo.append((v, u))
    return n


def test_label_finds_8_connected_components():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((12, 30)) < 0.35
        labels, n = ink.label(mask)
        assert n == _bfs_count(mask)
        assert ((labels > 0) == mask).all() and set(np.unique(labels[mask])) == set(range(1, n + 1))
        # pixels of one component share a label: 8-neighbours inside the mask agree
        a, b = labels[:, :-1], labels[:, 1:]
        both = mask[:, :-1] & mask[:, 1:]
        assert (a[both] == b[both]).all()


def test_blobs_drop_specks_and_merge_stacked_pieces():
    strip = np.zeros((28, 40), np.uint8)
    strip[4:12, 5:12] = 255   # a piece above ...
    strip[14:24, 6:13] = 255  # ... another below it, in the same columns: one digit
    strip[2, 30] = 255        # a speck
    strip[20:24, 25:29] = 255  # a small round blob low in the line: a point
    blobs = ink.find_blobs(strip)
    assert [(b.x0, b.x1) for b in blobs] == [(5, 13), (25, 29)]
    assert not ink.dotlike(blobs[0], blobs) and ink.dotlike(blobs[1], blobs)
    digit = ink.to_digit(strip, blobs[0].mask)
    assert digit.shape == (28, 28) and digit.max() == 255 and digit[:, :3].max() == 0


def test_docstring_examples_run():
    import doctest

    from lenet.inference.read import ink as MOD

    failures, tried = doctest.testmod(MOD, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0
