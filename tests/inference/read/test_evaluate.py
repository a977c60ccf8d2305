"""Scoring a reader on benchmark parts: exact-string accuracy and % read at 1 % error."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lenet.data.strings import Strings
from lenet.inference.read.evaluate import Score, evaluate


def _part(texts):
    images = [np.full((28, 10 + i), i, np.uint8) for i in range(len(texts))]
    return Strings(images, list(texts), [np.zeros((len(t), 2), np.int64) for t in texts])


def _reader(image):  # reads the string its image stands for, unsure of the odd ones
    i = int(image[0, 0])
    return SimpleNamespace(text=TRUTH[i] if i % 3 else "x", confidence=1.0 - i / 100)


TRUTH = [f"{i:05d}" for i in range(30)]


def test_evaluate_counts_exact_strings_per_part():
    parts = {"a": _part(TRUTH), "b": _part(TRUTH[:9])}
    scores = evaluate(_reader, parts)
    assert scores["a"].strings == 30 and scores["a"].correct == 20
    assert scores["a"].accuracy == pytest.approx(20 / 30)
    assert scores["b"].correct == 6
    # the most confident (image 0) is wrong: nothing can be read at 1 % error
    assert scores["a"].read == 0.0 and scores["a"].threshold is None
    assert set(scores["a"].to_dict()) >= {"part", "accuracy", "read", "threshold", "seconds"}
    limited = evaluate(_reader, parts, limit=5)
    assert limited["a"].strings == 5 and limited["a"].correct == 3


def test_batches_give_the_same_scores():
    def batched(images):
        assert isinstance(images, list) and len(images) <= 7
        return [_reader(x) for x in images]

    one = evaluate(_reader, {"a": _part(TRUTH)})["a"]
    many = evaluate(batched, {"a": _part(TRUTH)}, batch=7)["a"]
    assert (one.correct, one.read, one.threshold) == (many.correct, many.read, many.threshold)
    with pytest.raises(ValueError, match="readings for"):
        evaluate(lambda xs: [], {"a": _part(TRUTH)}, batch=4)


def test_score_to_dict_is_plain():
    d = Score("p", 4, 3, 0.5, 0.7, 1.5).to_dict()
    assert d == {"part": "p", "strings": 4, "correct": 3, "read": 0.5, "threshold": 0.7,
                 "seconds": 1.5, "max_error": 0.01, "accuracy": 0.75, "kept": None,
                 "kept_errors": None}


def test_a_readers_own_rejections_are_scored() -> None:
    Read = SimpleNamespace
    part = Strings([np.zeros((28, 9), np.uint8)] * 4, ["1", "2", "3", "4"],
                   [np.zeros((1, 2))] * 4)
    answers = iter([("1", False), ("9", False), ("3", True), ("8", True)])

    def reader(image):
        text, rejected = next(answers)
        return Read(text=text, confidence=0.5, rejected=rejected)

    score = evaluate(reader, {"p": part})["p"]
    assert (score.kept, score.kept_errors) == (0.5, 0.5)  # 2 of 4 kept, 1 of them wrong
    plain = evaluate(lambda image: Read(text="1", confidence=0.5), {"p": part})["p"]
    assert plain.kept is None and plain.kept_errors is None


def test_docstring_examples_run():
    import doctest

    from lenet.inference.read import evaluate as MOD

    failures, tried = doctest.testmod(MOD, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0
