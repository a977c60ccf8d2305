"""Read whole numbers: images in, :class:`Reading` out (``lenet read``, ``lenet.read``).

A :class:`Reader` is the number-reading sibling of :class:`~lenet.inference.predict.Predictor`:
it takes the same inputs (an image file's path or bytes, a PIL image, a numpy array or a torch
tensor, one image or a list), makes each one line's normalized strip
(:mod:`lenet.inference.read.line`), and reads it with one of the paper's three methods:

- ``"sdnn"`` (the default): the Space Displacement Neural Network (LeNet-5 replicated over the
  line, :mod:`lenet.models.sdnn`) scores every class every 4 px; Viterbi with a character model
  (:mod:`lenet.inference.read.decode`) reads the string, with an optional known length or
  pattern. Many images are read in width buckets, each one batch through the network;
- ``"segment"``: heuristic over-segmentation, the digit recognizer on each candidate cut, and
  Viterbi over the cuts (the paper's Sec. V; :mod:`lenet.inference.read.segment`);
- ``"components"``: connected components, one digit each (the naive baseline).

Each :class:`Reading` gives the text, a confidence, each digit's position in the *input*
image's pixels and its probability, and whether it is rejected (confidence under the reader
weights' threshold, chosen for 1 % string errors on held-out training strings). A blank image
reads as ``""``.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import torch
from PIL import Image
from torch import nn

from lenet.data.strings import pad_batch
from lenet.data.transforms import Preprocessing
from lenet.errors import WeightsError
from lenet.inference.predict import InputError, InputTypeError, Predictor, array_pixels
from lenet.inference.read.decode import Decoded, decode_batch
from lenet.inference.read.line import Line, pixels_line, to_line
from lenet.inference.read.segment import classifier, read_components, read_oversegmented
from lenet.models import hub
from lenet.models import weights as weights_module
from lenet.models.readers import DEFAULT_READER, is_reader_name, load_reader
from lenet.models.sdnn import PREPROCESSING, SDNN
from lenet.runtime.workers import fork_map, shards

METHODS = ("sdnn", "segment", "components")
T = TypeVar("T")
# Strips through the SDNN at once: a width bucket is cut into batches of at most BATCH strips
# and BATCH_PIXELS pixels for each torch thread. Small batches keep c1's float maps (6 per
# member, 4 bytes a pixel) within the CPU's cache: 32 strips of 128 px run twice as fast a strip
# as 256 at once. Two forked processes of one thread read 1,000 files at 2,455-2,493/s with
# this, 2,281-2,437/s with twice as many pixels (interleaved runs): fewer of the parent's
# memory pages to copy (issue 30).
BATCH = 64
BATCH_PIXELS = 28 * 2048
# Images a worker process must get for a list to be shared among several (Reader's `workers`,
# `lenet read`'s files): one starts in tens of milliseconds and reads about a thousand a second.
PER_WORKER = 256


@dataclass(frozen=True)
class DigitRead:
    """One character read: its text, its ink columns ``[x0, x1)`` in the input image's pixels,
    and its probability."""

    char: str
    x0: int
    x1: int
    probability: float


@dataclass(frozen=True)
class Reading:
    """What a :class:`Reader` read in one image.

    >>> r = Reading("42", 0.97, False, "sdnn", (DigitRead("4", 3, 20, 0.99),
    ...             DigitRead("2", 22, 40, 0.98)), None, ())
    >>> r.to_dict()["digits"][1]
    {'char': '2', 'x0': 22, 'x1': 40, 'probability': 0.98}
    """

    text: str
    confidence: float
    rejected: bool
    method: str
    digits: tuple[DigitRead, ...]
    columns: np.ndarray | None = None  # (T, 12) per-column probabilities (SDNN only)
    path: tuple[int, ...] = ()  # the Viterbi path, one class per column (SDNN only)

    def to_dict(self, columns: bool = True) -> dict[str, Any]:
        """JSON-ready (plain lists and numbers), as ``lenet read --json`` prints it; without
        the SDNN's columns and path when `columns` is false (what a line of text needs)."""
        out = {"text": self.text, "confidence": float(self.confidence),
               "rejected": bool(self.rejected), "method": self.method,
               "digits": [{"char": d.char, "x0": int(d.x0), "x1": int(d.x1),
                           "probability": float(d.probability)} for d in self.digits]}
        if columns:
            out["columns"] = None if self.columns is None \
                else np.round(self.columns.astype(np.float64), 5).tolist()
            out["path"] = [int(c) for c in self.path]
        return out


class Reader:
    """Reads numbers; call it on an image or a list of images (see :meth:`__call__`).

    `weights`: reader weights (bundled name, ``.safetensors`` file or run directory) for
    ``method="sdnn"``, or an :class:`~lenet.models.sdnn.SDNN` module itself; `digits`: the digit
    weights the segmenting methods use (default: the default digit weights); `reject`: the
    confidence under which a reading is rejected (default: the reader weights' own; none for a
    bare module); `workers`: a list of at least :data:`PER_WORKER` images each is shared among
    that many processes, one core each, this one and forked copies of it (Linux, on the CPU:
    :func:`lenet.runtime.workers.fork_map`), as a DataLoader's ``num_workers`` decode. Images
    are decoded and normalized holding Python's lock, so one process keeps one core busy with
    it; strips (28-high arrays) need no decoding and read fastest in one process
    (BENCHMARKS.md).

    >>> reader = Reader()
    >>> strip = np.zeros((28, 40), np.uint8); strip[4:24, 18:21] = 255   # a white "1"
    >>> reading = reader(strip)
    >>> reading.text, reading.digits[0].x0 <= 18 < reading.digits[0].x1
    ('1', True)
    >>> reader(np.zeros((28, 40), np.uint8)).text     # no ink: nothing to read
    ''
    """

    def __init__(self, weights: str | os.PathLike[str] | nn.Module = DEFAULT_READER, *,
                 method: str = "sdnn", digits: str | None = None, device: str = "cpu",
                 reject: float | None = None, workers: int = 1) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers {workers!r}: expected a whole number >= 1")
        self.workers = workers
        if reject is not None and not 0.0 <= reject <= 1.0:
            raise ValueError(f"reject {reject!r}: expected a confidence in 0..1")
        self.method = method
        self.device = torch.device(device)
        self.model: SDNN | None = None
        self.preprocessing: Preprocessing = PREPROCESSING
        self.digits: Predictor | None = None
        own: float | None = None
        if method == "sdnn":
            self.model, self.preprocessing, own = _sdnn(weights, device)
        else:
            if digits is not None and is_reader_name(digits):
                raise WeightsError(f"{digits}: reader weights (an SDNN), not digit weights: "
                                   "read with them by method 'sdnn', or give digit weights "
                                   f"such as {hub.DEFAULT_WEIGHTS!r}")
            self.digits = Predictor.load(digits or hub.DEFAULT_WEIGHTS)
            self._classify = classifier(self.digits)
        self.reject = own if reject is None else float(reject)

    @overload
    def __call__(self, images: str | os.PathLike[str] | bytes | Image.Image, *,
                 length: int | None = ..., pattern: str | None = ...) -> Reading: ...
    @overload
    def __call__(self, images: list[Any] | tuple[Any, ...], *, length: int | None = ...,
                 pattern: str | None = ...) -> list[Reading]: ...
    @overload
    def __call__(self, images: np.ndarray | torch.Tensor, *, length: int | None = ...,
                 pattern: str | None = ...) -> Reading | list[Reading]: ...

    def __call__(self, images: Any, *, length: int | None = None, pattern: str | None = None
                 ) -> Reading | list[Reading]:
        """One image in, one :class:`Reading` out; a list (or an array or tensor batch, as a
        :class:`~lenet.inference.predict.Predictor` takes them) in, a list out.

        An image is a file's path or bytes, a PIL image, or an array or tensor of one image
        (a 28-high gray array, white on black, is a normalized strip and is read as it is; any
        other is a picture: see :func:`lenet.inference.read.line.to_line`). `length`: the
        number of characters to read (a zip code: 5); `pattern`: ``"zip"``, ``"amount"`` (digits,
        a point, two digits) or a template (``d`` any digit, a literal digit or ``.``, each
        optionally followed by ``{m}``, ``{m,n}``, ``+``, ``*`` or ``?``). A bad image is an
        :class:`~lenet.inference.decoding.ImageError` naming it (a ValueError for arrays).
        """
        parts = self.shares(range(len(images))) if isinstance(images, (list, tuple)) else []
        if len(parts) > 1:
            self.read_lines([], length=length)  # a bad length: one error, not one a worker
            done = fork_map(lambda part: self.read_lines(
                [to_line(images[i], f"item {i}") for i in part], length=length,
                pattern=pattern), parts)
            return [reading for part in done for reading in part]
        lines, single = self.lines(images)
        readings = self.read_lines(lines, length=length, pattern=pattern)
        return readings[0] if single else readings

    def shares(self, items: Sequence[T]) -> list[Sequence[T]]:
        """`items` cut into the shares :func:`~lenet.runtime.workers.fork_map` gives its
        processes: one a worker, at least :data:`PER_WORKER` each; one share on a GPU."""
        return shards(items, self.workers if self.device.type == "cpu" else 1, PER_WORKER)

    def lines(self, images: Any) -> tuple[list[Line], bool]:
        """Each image's :class:`~lenet.inference.read.line.Line`, and whether it was one."""
        if isinstance(images, (list, tuple)):
            return [to_line(x, f"item {i}") for i, x in enumerate(images)], False
        if isinstance(images, (np.ndarray, torch.Tensor)):
            pixels, single = array_pixels(images, "input")
            return [pixels_line(p, "input" if single else f"input[{i}]")
                    for i, p in enumerate(pixels)], single
        return [to_line(images, "input")], True

    def read_lines(self, lines: Sequence[Line], *, length: int | None = None,
                   pattern: str | None = None) -> list[Reading]:
        """Readings of lines already normalized (what :meth:`__call__` does after
        :meth:`lines`; `lenet read` takes this path for its files)."""
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                                   or length < 0):
            raise ValueError(f"length {length!r}: expected a whole number >= 0")
        if self.method == "sdnn":
            return self._read_sdnn(lines, length, pattern)
        return [self._read_segmented(line, length, pattern) for line in lines]

    # ------------------------------------------------------------------- the SDNN
    def _read_sdnn(self, lines: Sequence[Line], length: int | None, pattern: str | None
                   ) -> list[Reading]:
        out: list[Reading | None] = [None] * len(lines)
        todo = [i for i, line in enumerate(lines) if not line.blank]
        for i in set(range(len(lines))) - set(todo):
            out[i] = self._empty()
        for batch in _buckets(todo, [lines[i].width for i in todo]):
            logprobs = self._columns([lines[i].strip for i in batch])
            # Unconstrained, the forward algorithm runs once for the whole batch.
            decoded = decode_batch(logprobs, length, pattern)
            for i, lp, d in zip(batch, logprobs, decoded, strict=True):
                out[i] = self._reading(lines[i], lp, d)
        return [r for r in out if r is not None]

    def _columns(self, strips: list[np.ndarray]) -> list[np.ndarray]:
        """Each strip's (T_i, 12) per-column log-probabilities, float64, one batch."""
        assert self.model is not None
        batch, widths = pad_batch(strips)
        x = self.preprocessing(torch.from_numpy(batch)).to(self.device)
        with torch.inference_mode():
            lp = torch.log_softmax(self.model(x).float(), dim=-1).cpu().numpy()
        return [lp[i, :self.model.columns(int(w))].astype(np.float64)
                for i, w in enumerate(widths)]

    def _reading(self, line: Line, lp: np.ndarray, d: Decoded) -> Reading:
        assert self.model is not None
        centres = [(self.model.centre(t0) + self.model.centre(t1 - 1)) / 2
                   for t0, t1 in d.spans]
        boxes = _char_boxes(line.strip, centres, self.model.stride)
        digits = tuple(_digit(line, c, x0, x1, p)
                       for c, (x0, x1), p in zip(d.text, boxes, d.probabilities, strict=True))
        return Reading(d.text, d.confidence, self._rejected(d.confidence), "sdnn", digits,
                       np.exp(lp).astype(np.float32), tuple(d.path))

    def _empty(self) -> Reading:
        return Reading("", 1.0, False, self.method, (), None, ())

    def _rejected(self, confidence: float) -> bool:
        return self.reject is not None and confidence < self.reject

    # ------------------------------------------------------------------- segmenting
    def _read_segmented(self, line: Line, length: int | None, pattern: str | None
                        ) -> Reading:
        if line.blank:
            return self._empty()
        if self.method == "components":
            seg = read_components(line.strip, self._classify)
        else:
            seg = read_oversegmented(line.strip, self._classify, length, pattern)
        digits = tuple(_digit(line, d.char, d.x0, d.x1, d.probability) for d in seg.digits)
        return Reading(seg.text, seg.confidence, self._rejected(seg.confidence), self.method,
                       digits)


def _sdnn(weights: str | os.PathLike[str] | nn.Module, device: str
          ) -> tuple[SDNN, Preprocessing, float | None]:
    """The SDNN, its preprocessing and its own reject threshold (None for a bare module)."""
    if isinstance(weights, nn.Module):
        if not isinstance(weights, SDNN):
            raise TypeError(f"weights: a {type(weights).__name__}; a Reader takes reader "
                            "weights or an SDNN (SDNN.from_classifier makes one of a lenet5)")
        return weights.to(device).eval(), PREPROCESSING, None
    if not is_reader_name(weights) and weights_module.is_bundled(weights):
        raise WeightsError(f"{os.fspath(weights)}: digit weights, not reader weights: read "
                           "with them by method 'segment' or 'components', or give reader "
                           f"weights such as {DEFAULT_READER!r}")
    model, meta = load_reader(weights, device)
    return model, meta.preprocessing, float(meta.extra["reject"])


def _digit(line: Line, char: str, x0: float, x1: float, probability: float) -> DigitRead:
    """A character read at strip columns [x0, x1), placed in the input image's pixels (at
    least one pixel wide)."""
    left = min(line.to_input(x0), max(line.size[0] - 1, 0))
    return DigitRead(char, left, max(line.to_input(x1), left + 1), float(probability))


def _buckets(items: list[int], widths: list[int]) -> list[list[int]]:
    """`items` in batches of similar width (sorted by width, cut at BATCH strips or
    BATCH_PIXELS padded pixels a torch thread), so that padding costs little."""
    order = sorted(range(len(items)), key=lambda k: widths[k])
    pixels = BATCH_PIXELS * torch.get_num_threads()
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        if current and (len(current) >= BATCH or (len(current) + 1) * widths[k] * 28 > pixels):
            batches.append(current)
            current = []
        current.append(items[k])
    if current:
        batches.append(current)
    return batches


def _char_boxes(strip: np.ndarray, centres: list[float], stride: int
                ) -> list[tuple[float, float]]:
    """Each character's ink columns [x0, x1) in the strip: the ink within half a digit of its
    centre, split from its neighbours' at the midpoints between centres; a character with no
    ink there gets one stride about its centre."""
    if not centres:
        return []
    # Plain Python over a list: a number has a few characters, and numpy's calls on arrays of
    # five cost more than the work (every number `lenet read` reads pays this).
    inked = np.flatnonzero((strip >= 51).any(axis=0)).tolist()
    boxes = []
    for k, c in enumerate(centres):
        lo = max(c - 14.0, (centres[k] + centres[k - 1]) / 2 if k else -math.inf)
        hi = min(c + 14.0, (centres[k + 1] + c) / 2 if k + 1 < len(centres) else math.inf)
        first = bisect.bisect_left(inked, lo)  # the first inked column >= lo
        last = bisect.bisect_left(inked, hi) - 1  # the last one < hi
        if first <= last:
            boxes.append((float(inked[first]), float(inked[last] + 1)))
        else:
            boxes.append((c - stride / 2, c + stride / 2))
    return boxes


@overload
def read(image: str | os.PathLike[str] | bytes | Image.Image, **kwargs: Any) -> Reading: ...
@overload
def read(image: list[Any] | tuple[Any, ...], **kwargs: Any) -> list[Reading]: ...
@overload
def read(image: np.ndarray | torch.Tensor, **kwargs: Any) -> Reading | list[Reading]: ...


def read(image: Any, **kwargs: Any) -> Reading | list[Reading]:
    """Read the number in `image` (see :meth:`Reader.__call__` for what it takes) with the
    default reader; keyword arguments go to :class:`Reader` (``method``, ``weights``,
    ``reject``...) or to the call (``length``, ``pattern``). The reader is kept for the next
    call with the same settings.

    >>> strip = np.zeros((28, 40), np.uint8); strip[4:24, 18:21] = 255
    >>> read(strip).text
    '1'
    """
    call = {k: kwargs.pop(k) for k in ("length", "pattern") if k in kwargs}
    return _cached(**kwargs)(image, **call)


_READERS: dict[tuple[tuple[str, Any], ...], Reader] = {}


def _cached(**kwargs: Any) -> Reader:
    key = tuple(sorted((k, v if isinstance(v, (str, int, float, type(None))) else id(v))
                       for k, v in kwargs.items()))
    if key not in _READERS:
        if len(_READERS) >= 8:
            _READERS.clear()
        _READERS[key] = Reader(**kwargs)
    return _READERS[key]


__all__ = ["METHODS", "DigitRead", "InputError", "InputTypeError", "Reader", "Reading", "read"]
