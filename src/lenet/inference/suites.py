"""Digit weights measured on the real-input suite (:mod:`lenet.data.suites`): per part, the
accuracy, the errors and the most frequent confusions.

Each picture goes through lenet's own preprocessing, as a user's file does
(:func:`lenet.inference.preprocess.preprocess_opened`: grayscale, ink made white, cropped,
scaled into 20x20, centred), then to the network; a picture the preprocessing refuses (no
ink found) counts as an error, predicted as nothing (``-1``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from lenet.data.suites import Part, real_suite
from lenet.errors import WeightsError
from lenet.inference.decoding import ImageError
from lenet.inference.predict import Predictor
from lenet.inference.preprocess import preprocess_opened

NOTHING = -1  # the "prediction" for a picture the preprocessing found no digit in


@dataclass(frozen=True)
class PartResult:
    """One part's outcome: how many digits, how many read wrong, and the commonest mistakes
    as ``(true, predicted, count)`` (predicted -1: no digit found)."""

    name: str
    total: int
    errors: int
    confusions: tuple[tuple[int, int, int], ...] = ()

    @property
    def accuracy(self) -> float:
        return (self.total - self.errors) / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.name, "total": self.total, "errors": self.errors,
                "accuracy": self.accuracy,
                "confusions": [{"true": t, "predicted": p, "count": c}
                               for t, p, c in self.confusions]}


@dataclass(frozen=True)
class SuiteResult:
    """Every part's :class:`PartResult`, in the suite's order, and the weights measured."""

    weights: str
    parts: tuple[PartResult, ...] = field(default_factory=tuple)

    @property
    def mean(self) -> float:
        """The mean of the parts' accuracies (each part weighs the same)."""
        return float(np.mean([p.accuracy for p in self.parts])) if self.parts else 0.0

    def __getitem__(self, name: str) -> PartResult:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "mean_accuracy": self.mean,
                "parts": [p.to_dict() for p in self.parts]}


def evaluate_suite(predictor_or_weights: Predictor | str | os.PathLike[str],
                   parts: Sequence[str] | None = None,
                   data_dir: str | os.PathLike[str] | None = None,
                   suite: Mapping[str, Part] | None = None, top: int = 3) -> SuiteResult:
    """Measure digit weights (a :class:`Predictor`, bundled weights' name or a weights file)
    on the real-input suite's `parts` (default: all), or on a `suite` already in hand (name ->
    :class:`~lenet.data.suites.Part`, as :func:`~lenet.data.suites.build_part` makes).

    >>> from lenet.data.suites import build_part
    >>> r = evaluate_suite("lenet5", suite={"ink": build_part("ink", size=20)})
    >>> r["ink"].total, 0.0 <= r["ink"].accuracy <= 1.0, sorted(r.to_dict())
    (20, True, ['mean_accuracy', 'parts', 'weights'])
    """
    predictor = (predictor_or_weights if isinstance(predictor_or_weights, Predictor)
                 else Predictor.load(predictor_or_weights))
    if list(predictor.classes) != [str(d) for d in range(10)]:
        raise WeightsError(f"{predictor_or_weights}: the real-input suite is digits 0-9, but "
                           f"these weights classify {predictor.dataset} "
                           f"({', '.join(predictor.classes[:4])}, ...); give digit weights")
    if suite is None:
        suite = real_suite(list(parts) if parts is not None else None, data_dir)
    elif parts is not None:
        suite = {name: suite[name] for name in parts}
    name = (str(predictor_or_weights) if not isinstance(predictor_or_weights, Predictor)
            else predictor.model_name)
    return SuiteResult(name, tuple(_part(predictor, n, p, top) for n, p in suite.items()))


def predict_part(predictor: Predictor, images: np.ndarray) -> np.ndarray:
    """int64 (N,) predicted classes for a part's pictures (NOTHING where no ink was found)."""
    digits = np.zeros((len(images), 28, 28), np.uint8)
    found = np.zeros(len(images), bool)
    for i, picture in enumerate(images):
        try:
            digits[i] = preprocess_opened(Image.fromarray(picture), f"picture {i}")
            found[i] = True
        except ImageError:
            pass
    out = np.full(len(images), NOTHING, np.int64)
    if found.any():
        out[found] = predictor.scores(digits[found]).argmax(axis=1)
    return out


def _part(predictor: Predictor, name: str, part: Part, top: int) -> PartResult:
    predicted = predict_part(predictor, part.images)
    labels = np.asarray(part.labels, np.int64)
    wrong = predicted != labels
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(labels[wrong].tolist(), predicted[wrong].tolist(), strict=True):
        pairs[(t, p)] = pairs.get((t, p), 0) + 1
    common = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return PartResult(name, len(labels), int(wrong.sum()),
                      tuple((t, p, c) for (t, p), c in common))


def format_suite(result: SuiteResult) -> str:
    """A table: one row per part (accuracy, errors, top confusions), then the mean.

    >>> print(format_suite(SuiteResult("w", (PartResult("ink", 10, 1, ((8, 1, 1),)),))))
    real-input suite: w
    part           accuracy       errors  most confused (true->predicted x count)
    ink             90.00 %     1 / 10     8->1 x1
    mean            90.00 %
    """
    lines = [f"real-input suite: {result.weights}",
             f"{'part':12s} {'accuracy':>10s} {'errors':>12s}  most confused "
             "(true->predicted x count)"]
    for p in result.parts:
        mistakes = ", ".join(f"{t}->{'none' if q == NOTHING else q} x{c}"
                             for t, q, c in p.confusions)
        lines.append(f"{p.name:12s} {100 * p.accuracy:8.2f} % {p.errors:>5d} / {p.total:<5d}  "
                     f"{mistakes}".rstrip())
    lines.append(f"{'mean':12s} {100 * result.mean:8.2f} %")
    return "\n".join(lines)
