"""Reading a number by cutting it into digits: the two segmenting readers.

Both take a normalized strip (uint8 (28, W), white ink on black, digits about 20 px high, as
:mod:`lenet.inference.read.line` makes and :mod:`lenet.data.strings` composes) and a digit
recognizer ``classify``: uint8 (n, 28, 28) MNIST-style digits -> (n, 10) probabilities (see
:func:`classifier`). Each piece of ink is made an MNIST digit by MNIST's own preprocessing
(:func:`lenet.inference.preprocess.mnist_preprocess`: ink box, 20 px, centre of mass).

- :func:`read_components` is the naive baseline: one digit per connected component (after
  dropping specks and merging pieces of one digit that lie one above the other, such as a
  broken stroke or a 5's flag); a small round blob on the baseline is a decimal point.
- :func:`read_oversegmented` is the paper's heuristic over-segmentation (Sec. V): more cuts
  than needed (between components, and inside a component at minima of the vertical
  projection and of the distance between the upper and lower contours, each cut following the
  path of least ink from top to bottom within :data:`REACH` px of its column), every run of
  one to :data:`MAX_PIECES` pieces an arc of the segmentation graph scored by the recognizer,
  and Viterbi (Eq. 10) for the cheapest path from the first cut to the last, optionally under
  a known length or a pattern (the grammar of :func:`lenet.inference.read.decode.decode`).
  Cuts never cross, so the segments along any path share out the ink, each pixel once.

The paper's recognizer had a "rubbish" class, trained on pieces that are not characters; the
digit weights here have none. What stands in for it (an honest substitute, not the paper's):
each arc's penalty adds, to the recognizer's ``-log p(class)``, a class-conditional width prior
(a Gaussian fitted to MNIST *training* digits' ink widths: half a 0 is too narrow to be a 0,
two digits too wide to be one), a cost for each stroke a cut goes through, a cost for reading
two blobs side by side as one digit, and a constant per character (so that cutting one digit
into two confident halves costs more than reading it whole). A reading's confidence is the
product of its characters' probabilities times sigmoid(:data:`MARGIN_SCALE` x margin), the
margin being how much cheaper its path is than the best path that reads any other text (a cut
in the wrong place can leave every digit confidently read).

The weights of these terms (:class:`Penalties`), and the scale of the margin in the
confidence (:data:`MARGIN_SCALE`), were chosen by a grid search on 600 strings (3-7 digits, at
each spacing) of MNIST *training* digits 50,000-59,999, read by a ``lenet5`` trained on the
first 50,000 only (so that its probabilities on them are honest).

"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenet.inference.read import ink
from lenet.inference.read.decode import ALPHABET, PATTERNS, automaton
from lenet.runtime.threads import threads

Classify = Callable[[np.ndarray], np.ndarray]
SMALL_BATCH = 256  # digits: a batch this small is classified on one thread
MAX_PIECES = 4  # an arc spans at most this many consecutive pieces
MAX_WIDTH = 26  # px: no one digit is wider (MNIST's box is 20; slant and rims add some)
WIDE_GAP = 3  # px of blank columns inside a segment: two digits, never one
OVERLAP = 4  # px: how far a blob may reach past a cut and still be read whole
REACH = 4  # px: how far a cut inside a blob may wander from its column
NMS = 3  # px: candidate cuts closer than this keep only the deeper one
# Each class's ink width in px (mean, sd) over MNIST's 60,000 training digits (width_prior()).
WIDTHS = ((17.7, 2.5), (8.9, 3.9), (18.0, 2.5), (16.1, 2.9), (16.0, 2.9),
          (17.7, 2.8), (14.8, 2.9), (15.6, 2.9), (15.4, 3.0), (13.9, 2.7))
# The penalty's weights, chosen on strings of MNIST training digits (see the module docstring).
W_WIDTH = 0.5
W_CUT = 0.1
PER_CHAR = 0.5
JOIN = 2.0
SKIP = 2.0
SLIVER = 10  # ink px: a segment with less may be left unread (a ligature, a speck)
MARGIN_SCALE = 2.0  # the confidence: the digits' probabilities x sigmoid(this x margin)
_MEANS = np.array([m for m, _ in WIDTHS])
_SDS = np.array([s for _, s in WIDTHS])


@dataclass(frozen=True)
class Segment:
    """One character read: its text, ink columns [x0, x1) in the strip, probability."""

    char: str
    x0: int
    x1: int
    probability: float


@dataclass(frozen=True)
class Segmentation:
    """What a segmenting reader read: the text, a confidence in [0, 1] (the product of the
    characters' probabilities), and each character."""

    text: str
    confidence: float
    digits: tuple[Segment, ...]


def classifier(predictor: Any) -> Classify:
    """A :class:`~lenet.inference.predict.Predictor` as a ``classify`` callable:
    uint8 (n, 28, 28) digits -> float64 (n, 10) softmax probabilities.

    >>> from lenet.inference.predict import Predictor
    >>> classifier(Predictor.load("lenet5"))(np.zeros((2, 28, 28), np.uint8)).shape
    (2, 10)
    """
    def classify(digits: np.ndarray) -> np.ndarray:
        if len(digits) == 0:
            return np.zeros((0, 10))
        # A string's few dozen pieces: one thread (more only wait on each other, and spin
        # on a busy machine, measured 6x slower with 2 on 2 shared cores).
        with threads(1 if len(digits) <= SMALL_BATCH else None):
            s = np.asarray(predictor.scores(np.asarray(digits, np.uint8)), np.float64)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    return classify


def width_prior(images: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Each class's ink width (mean, sd) in px, rounded to 0.1, as :data:`WIDTHS` was made
    from MNIST's training digits.

    >>> d = np.zeros((10, 28, 28), np.uint8); d[:, 4:24, 10:20] = 255
    >>> width_prior(d, np.arange(10))[0]
    (10.0, 0.0)
    """
    cols = np.asarray((np.asarray(images) >= ink.INK).any(axis=1))
    first = cols.argmax(axis=1)
    last = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    widths = (last - first).astype(np.float64)
    return tuple((round(float(widths[labels == c].mean()), 1),
                  round(float(widths[labels == c].std()), 1)) for c in range(10))


# --------------------------------------------------------------------------- components
def _result(chars: list[tuple[str, int, int, float]]) -> Segmentation:
    digits = tuple(Segment(c, x0, x1, p) for c, x0, x1, p in chars)
    confidence = math.prod(d.probability for d in digits)
    return Segmentation("".join(d.char for d in digits), float(confidence), digits)


def read_components(strip: np.ndarray, classify: Classify) -> Segmentation:
    """The naive baseline: one character per connected component (see the module docstring).

    >>> blank = np.zeros((28, 40), np.uint8)
    >>> read_components(blank, lambda d: np.full((len(d), 10), 0.1)).text
    ''
    """
    strip = _check(strip)
    blobs = ink.find_blobs(strip)
    dots = [b for b in blobs if ink.dotlike(b, blobs)]
    digits = [b for b in blobs if not ink.dotlike(b, blobs)]
    probs = (classify(np.stack([ink.to_digit(strip, b.mask) for b in digits])) if digits
             else np.zeros((0, 10)))
    chars = [(str(int(np.argmax(p))), b.x0, b.x1, float(np.max(p)))
             for b, p in zip(digits, probs, strict=True)]
    chars += [(".", b.x0, b.x1, 1.0) for b in dots]
    return _result(sorted(chars, key=lambda c: (c[1], c[2])))


def _check(strip: np.ndarray) -> np.ndarray:
    strip = np.asarray(strip)
    if strip.ndim != 2 or strip.shape[0] != 28:
        raise ValueError(f"expected a normalized strip, uint8 (28, W), got shape {strip.shape}")
    return np.ascontiguousarray(strip, dtype=np.uint8)


# --------------------------------------------------------------------------- over-segmentation
@dataclass(frozen=True)
class _Cut:
    x: int  # the cut's mean column: it runs between columns path[r] - 1 and path[r] on row r
    cost: float  # ink px it goes through (0 between blobs)
    path: tuple[int, ...] = ()  # per row; () for a straight cut at x
    between: bool = False  # a cut between two blobs (not through one)

    def left_of(self, width: int) -> np.ndarray:
        """(28, width) bool: the pixels left of the cut."""
        edge = np.asarray(self.path or (self.x,) * 28)[:, None]
        return np.arange(width)[None, :] < edge


def _minima(values: np.ndarray) -> list[int]:
    """Indices of the local minima of `values` (plateaus: their middle)."""
    out, i, n = [], 1, len(values)
    while i < n - 1:
        j = i
        while j + 1 < n - 1 and values[j + 1] == values[i]:
            j += 1
        if values[i - 1] > values[i] and values[j + 1] > values[i]:
            out.append((i + j + 1) // 2)
        i = j + 1
    return out


def _inner_cuts(blob: ink.Blob) -> list[_Cut]:
    """Candidate cuts inside a blob: minima of its vertical projection (ink px per column)
    and of the distance between its upper and lower contours, at least NMS px in."""
    mask = blob.mask[:, blob.x0:blob.x1]
    if mask.shape[1] < 2 * NMS + 2:
        return []
    count = mask.sum(axis=0).astype(np.float64)
    rows = np.arange(mask.shape[0])[:, None]
    top = np.where(mask, rows, 99).min(axis=0)
    bottom = np.where(mask, rows, -1).max(axis=0)
    extent = (bottom - top + 1).astype(np.float64)
    found = sorted({*_minima(count), *_minima(extent)})
    found = [x for x in found if NMS <= x <= mask.shape[1] - NMS]
    found.sort(key=lambda x: count[x])
    kept: list[int] = []
    for x in found:
        if all(abs(x - k) >= NMS for k in kept):
            kept.append(x)
    return [_path_cut(blob, blob.x0 + x) for x in sorted(kept)]


def _path_cut(blob: ink.Blob, x: int) -> _Cut:
    """The cut from top to bottom within REACH px of column x through the least ink, one px
    sideways a row at most (the paper cuts along such paths, not only straight down)."""
    lo, hi = max(x - REACH, blob.x0 + 1), min(x + REACH + 1, blob.x1)
    dark = blob.mask[:, lo:hi].astype(np.float64)
    h, w = dark.shape
    sideways = 0.3  # per px a row moves, so that a straight cut wins a tie
    total = dark[0] + 0.05 * np.abs(np.arange(lo, hi) - x)
    back = np.zeros((h, w), np.int64)
    for r in range(1, h):
        options = np.stack([np.r_[np.inf, total[:-1]] + sideways, total,
                            np.r_[total[1:], np.inf] + sideways])
        step = options.argmin(axis=0)
        back[r] = np.arange(w) + step - 1
        total = options.min(axis=0) + dark[r]
    col = int(total.argmin())
    path = [0] * h
    for r in range(h - 1, -1, -1):
        path[r] = col
        col = int(back[r, col])
    cols = np.asarray(path)
    return _Cut(round(float(cols.mean())) + lo, float(dark[np.arange(h), cols].sum()),
                tuple(int(c) + lo for c in cols))


def _cuts(blobs: list[ink.Blob]) -> list[_Cut]:
    """The first and last ink columns, a cut between each two blobs, and the inner cuts."""
    cuts = [_Cut(blobs[0].x0, 0.0, between=True)]
    for a, b in itertools.pairwise(blobs):
        cuts += _inner_cuts(a)
        cuts.append(_Cut((a.x1 + b.x0 + 1) // 2, 0.0, between=True))
    cuts += _inner_cuts(blobs[-1])
    cuts.append(_Cut(blobs[-1].x1, 0.0, between=True))
    # Overlapping blobs can put a between-blobs cut left of an inner cut: keep them in order.
    out: list[_Cut] = []
    for c in sorted(cuts, key=lambda c: c.x):
        if out and c.x <= out[-1].x:
            continue
        if out:  # no cut may cross the one before it on any row: segments must not overlap
            before = np.asarray(out[-1].path or (out[-1].x,) * 28)
            own = np.asarray(c.path or (c.x,) * 28)
            if (own < before).any():
                c = _Cut(c.x, c.cost, tuple(int(v) for v in np.maximum(own, before)), c.between)
        out.append(c)
    return out


def _side(blob: ink.Blob, x: int) -> str:
    """Where `blob` lies from the cut at x: "L" left, "R" right (reaching past it by at most
    OVERLAP px, its centre of mass on its side), or "X" across it."""
    if blob.x1 <= x + OVERLAP and blob.centre < x:
        return "L"
    if blob.x0 >= x - OVERLAP and blob.centre >= x:
        return "R"
    return "X"


def _segment_mask(blobs: list[ink.Blob], a: _Cut, b: _Cut) -> np.ndarray:
    """The ink between cuts a and b: a blob beside a cut is left whole to its side (a cut
    between blobs follows their outlines), a blob across a cut is cut along it. Every ink px
    falls in exactly one segment of any path through the graph."""
    mask = np.zeros_like(blobs[0].mask)
    width = mask.shape[1]
    for blob in blobs:
        left, right = _side(blob, a.x), _side(blob, b.x)
        if left == "L" or right == "R":
            continue
        keep = blob.mask.copy()
        if left == "X":
            keep &= ~a.left_of(width)
        if right == "X":
            keep &= b.left_of(width)
        mask |= keep
    return mask


@dataclass(frozen=True)
class _Arc:
    """A segment of the graph, with what its penalties are made of."""

    start: int
    end: int
    x0: int
    x1: int
    probs: np.ndarray  # (11,) the recognizer's probability of each of ALPHABET (1 for a point)
    width: int  # its ink's width, px
    cut: float  # ink px its end cut goes through
    joins: int  # cuts between separate blobs inside it (two blobs side by side: two digits)
    area: int  # ink px (0: blank, nothing to read)
    dot: bool  # small and round on the baseline: a decimal point


@dataclass(frozen=True)
class Penalties:
    """The weights of an arc's penalty terms (see the module docstring)."""

    width: float = W_WIDTH  # times the width's squared z-score / 2
    cut: float = W_CUT  # per ink px the end cut goes through
    char: float = PER_CHAR  # per character read
    join: float = JOIN  # per pair of side-by-side blobs read as one digit
    skip: float = SKIP  # to leave a sliver of ink (< SLIVER px) unread


def _costs(arc: _Arc, pen: Penalties) -> tuple[np.ndarray, float]:
    """The arc's penalty as each class (inf: cannot be), and to leave it unread."""
    costs = np.full(len(ALPHABET), np.inf)
    if arc.area == 0:
        return costs, 0.0
    z = (arc.width - _MEANS) / _SDS
    costs[:10] = (-np.log(np.clip(arc.probs[:10], 1e-12, 1.0)) + pen.width * z * z / 2
                  + pen.cut * arc.cut + pen.join * arc.joins + pen.char)
    if arc.dot:
        costs[10] = pen.char
    return costs, pen.skip if arc.area < SLIVER else np.inf


def _arcs(strip: np.ndarray, blobs: list[ink.Blob], cuts: list[_Cut], classify: Classify
          ) -> list[_Arc]:
    """Every run of 1..MAX_PIECES pieces a segment can be, with its recognizer scores."""
    spans = []
    for i in range(len(cuts)):
        for j in range(i + 1, min(i + MAX_PIECES, len(cuts) - 1) + 1):
            mask = _segment_mask(blobs, cuts[i], cuts[j])
            cols = np.flatnonzero(mask.any(axis=0))
            if cols.size == 0:
                spans.append((i, j, cuts[i].x, cuts[j].x, mask))
                continue
            x0, x1 = int(cols[0]), int(cols[-1]) + 1
            if x1 - x0 > MAX_WIDTH:
                break  # longer runs are wider still
            if np.diff(cols).max(initial=1) > WIDE_GAP:
                continue
            spans.append((i, j, x0, x1, mask))
    inked = [s[4] for s in spans if s[4].any()]
    probs = iter(classify(np.stack([ink.to_digit(strip, m) for m in inked])) if inked
                 else np.zeros((0, 10)))
    baseline = ink.baseline(blobs)
    arcs = []
    for i, j, x0, x1, mask in spans:
        p11 = np.zeros(len(ALPHABET))
        area = int(mask.sum())
        dot = False
        if area:
            p11[:10] = next(probs)
            blob = ink.Blob.of(mask)
            dot = ink.dotlike(blob, [*blobs, blob]) and blob.y1 >= baseline - 3
            p11[10] = 1.0 if dot else 0.0
        joins = sum(c.between for c in cuts[i + 1:j])
        arcs.append(_Arc(i, j, x0, x1, p11, x1 - x0, cuts[j].cost, joins, area, dot))
    return arcs


def _viterbi(arcs: list[_Arc], nodes: int, length: int | None, pattern: str | None,
             pen: Penalties, avoid: str | None = None
             ) -> tuple[list[tuple[_Arc, int]], float] | None:
    """The cheapest path from node 0 to the last node (Eq. 10) as (arc, class or -1 for an
    unread sliver) and its penalty, under `length` characters and the `pattern` automaton,
    reading any text but `avoid`; None if no path meets them."""
    nfa = automaton(PATTERNS.get(pattern, pattern) if pattern else None)
    # A state: (pattern state, characters read, how much of `avoid` they match; -1: none)
    best: list[dict[tuple[int, int, int], tuple[float, Any]]] = [{} for _ in range(nodes)]
    best[0][(0, 0, 0)] = (0.0, None)
    by_start: list[list[tuple[_Arc, np.ndarray, float]]] = [[] for _ in range(nodes)]
    for arc in arcs:
        by_start[arc.start].append((arc, *_costs(arc, pen)))
    for node in range(nodes):
        for (q, n, i), (cost, _) in list(best[node].items()):
            for arc, costs, skip in by_start[node]:
                moves = [(skip, -1, q, n, i)] if math.isfinite(skip) else []
                moves += [(float(costs[c]), c, nxt, n + 1, _match(avoid, i, c))
                          for c, nxt in nfa.edges[q] if math.isfinite(costs[c])]
                for extra, c, q2, n2, i2 in moves:
                    if length is not None and n2 > length:
                        continue
                    key = (q2, n2 if length is not None else 0, i2)
                    old = best[arc.end].get(key)
                    if old is None or cost + extra < old[0]:
                        best[arc.end][key] = (cost + extra, (node, (q, n, i), arc, c))
    ends = [key for key in best[-1] if key[0] in nfa.accept
            and (length is None or key[1] == length)
            and (avoid is None or key[2] != len(avoid))]
    if not ends:
        return None
    node, key = nodes - 1, min(ends, key=lambda k: best[-1][k][0])
    total = best[node][key][0]
    path = []
    while (back := best[node][key][1]) is not None:
        node, key, arc, c = back
        path.append((arc, c))
    return path[::-1], total


def _match(avoid: str | None, i: int, c: int) -> int:
    """How much of `avoid` is matched after reading class c with i matched (-1: it differs)."""
    if avoid is None:
        return 0
    return i + 1 if 0 <= i < len(avoid) and avoid[i] == ALPHABET[c] else -1


def read_oversegmented(strip: np.ndarray, classify: Classify, length: int | None = None,
                       pattern: str | None = None, penalties: Penalties | None = None
                       ) -> Segmentation:
    """The paper's heuristic over-segmentation + recognizer + Viterbi (see the module
    docstring); `length`: read exactly that many characters; `pattern`: a name ("zip",
    "amount") or template as :func:`lenet.inference.read.decode.decode` takes. A strip that
    cannot be read under them reads "" with confidence 0.

    >>> read_oversegmented(np.zeros((28, 40), np.uint8), lambda d: np.full((len(d), 10), .1)).text
    ''
    """
    strip = _check(strip)
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ValueError(f"length must be a whole number >= 0, got {length!r}")
    blobs = ink.find_blobs(strip)
    if not blobs:
        return Segmentation("", 1.0 if not length else 0.0, ())
    cuts = _cuts(blobs)
    arcs = _arcs(strip, blobs, cuts, classify)
    pen = penalties or Penalties()
    found = _viterbi(arcs, len(cuts), length, pattern, pen)
    if found is None:
        return Segmentation("", 0.0, ())
    path, cost = found
    read = _result([(ALPHABET[c], arc.x0, arc.x1, float(arc.probs[c]))
                    for arc, c in path if c >= 0])
    # How much cheaper the answer is than the best other text: a cut in the wrong place can
    # be read with every digit sure, so the digits' probabilities alone do not tell it.
    other = _viterbi(arcs, len(cuts), length, pattern, pen, avoid=read.text)
    margin = math.inf if other is None else other[1] - cost
    sure = 1.0 / (1.0 + math.exp(-min(MARGIN_SCALE * margin, 50.0)))
    return Segmentation(read.text, read.confidence * sure, read.digits)
