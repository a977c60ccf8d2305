"""How well a reader reads numbers: exact-string accuracy on benchmark parts, and the share it
reads at 1 % string error.

A reader is any callable from an image (a (28, W) strip or a photo, as
:class:`lenet.data.strings.Strings` holds them) to an object with ``.text`` and
``.confidence`` (a :class:`~lenet.inference.read.reader.Reader`, or a function around
:mod:`lenet.inference.read.segment`). A string is right only if the whole text is.

"% read at 1 % error" is the paper's cheque-reader measure (Sec. X: 82 % read, 1 % errors,
17 % rejected): readings are accepted from the most confident down, as long as at most 1 % of
those accepted are wrong; the share accepted is reported. The confidence threshold that
reaches it on a *test* part is for reporting only (it is chosen by looking at the answers); a
reader's own rejection threshold comes from strings of *training* digits.

>>> from types import SimpleNamespace as Read
>>> import numpy as np
>>> from lenet.data.strings import Strings
>>> part = Strings([np.zeros((28, 9), np.uint8)] * 2, ["1", "2"], [np.zeros((1, 2))] * 2)
>>> scores = evaluate(lambda image: Read(text="1", confidence=0.9), {"tiny": part})
>>> scores["tiny"].accuracy
0.5
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lenet.analysis.evaluate import read_at_error
from lenet.data.strings import Strings

MAX_ERROR = 0.01  # the string error rate at which the share read is reported


@dataclass(frozen=True)
class Score:
    """One reader on one part: strings, how many read exactly, the share read while at most
    `max_error` of those read are wrong (and the confidence threshold that does it; None if
    no threshold does), and the seconds the reading took."""

    part: str
    strings: int
    correct: int
    read: float
    threshold: float | None
    seconds: float
    max_error: float = MAX_ERROR
    kept: float | None = None  # share the reader's own threshold accepts (None: no threshold)
    kept_errors: float | None = None  # share of those accepted that are wrong

    @property
    def accuracy(self) -> float:
        """Share of strings read exactly (nothing rejected)."""
        return self.correct / self.strings if self.strings else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready.

        >>> Score("5-paper", 10, 9, 0.8, 0.5, 1.0).to_dict()["accuracy"]
        0.9
        """
        return {**asdict(self), "accuracy": self.accuracy}


def evaluate(reader: Callable[[Any], Any], parts: Mapping[str, Strings], *,
             batch: int | None = None, limit: int | None = None,
             max_error: float = MAX_ERROR) -> dict[str, Score]:
    """Score `reader` on each part of `parts` (e.g. :func:`lenet.data.strings.benchmark`).

    `batch`: give the reader lists of that many images (a
    :class:`~lenet.inference.read.reader.Reader` reads a list faster) instead of one image a
    call; `limit`: only the first that many strings of each part.
    """
    out = {}
    for name, part in parts.items():
        n = len(part) if limit is None else min(limit, len(part))
        images, texts = part.images[:n], part.texts[:n]
        start = time.perf_counter()
        if batch:
            readings = [r for i in range(0, n, batch) for r in reader(list(images[i:i + batch]))]
        else:
            readings = [reader(image) for image in images]
        seconds = time.perf_counter() - start
        if len(readings) != n:
            raise ValueError(f"{name}: the reader gave {len(readings)} readings for {n} images")
        correct = np.array([r.text == t for r, t in zip(readings, texts, strict=True)], bool)
        confidence = np.array([float(r.confidence) for r in readings])
        share, threshold = read_at_error(confidence, correct, max_error)
        kept = kept_errors = None
        if readings and all(getattr(r, "rejected", None) is not None for r in readings):
            accepted = ~np.array([bool(r.rejected) for r in readings])
            kept = float(accepted.mean())
            kept_errors = float((accepted & ~correct).sum() / max(int(accepted.sum()), 1))
        out[name] = Score(name, n, int(correct.sum()), share, threshold, seconds, max_error,
                          kept, kept_errors)
    return out
