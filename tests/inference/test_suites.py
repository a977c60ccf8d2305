"""lenet.inference.suites: digit weights measured on the real-input suite's parts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lenet.data.suites import Part, build_part
from lenet.errors import WeightsError
from lenet.inference.predict import Predictor
from lenet.inference.suites import (
    NOTHING,
    PartResult,
    SuiteResult,
    evaluate_suite,
    format_suite,
    predict_part,
)


@pytest.fixture(scope="module")
def lenet5() -> Predictor:
    return Predictor.load("lenet5")


def test_parts_are_read_as_a_users_pictures(lenet5: Predictor, mnist_ready: None) -> None:
    """Each picture gives what the predictor gives for it as a PIL image (lenet's own
    preprocessing); accuracy and errors count those answers against the labels."""
    part = build_part("ink", size=30)
    one_by_one = [lenet5(Image.fromarray(p)).index for p in part.images[:5]]
    assert predict_part(lenet5, part.images[:5]).tolist() == one_by_one
    r = evaluate_suite(lenet5, suite={"ink": part, "drawn": build_part("drawn", size=10)})
    assert [p.name for p in r.parts] == ["ink", "drawn"]
    ink = r["ink"]
    wrong = int((predict_part(lenet5, part.images) != part.labels).sum())
    assert ink.total == 30 and ink.errors == wrong
    assert ink.accuracy == pytest.approx(1 - wrong / 30)
    assert ink.accuracy > 0.8  # photos of ink on paper: the 99 % weights read most of them
    assert sum(c for _, _, c in ink.confusions) <= ink.errors
    assert r.mean == pytest.approx((r["ink"].accuracy + r["drawn"].accuracy) / 2)


def test_a_blank_picture_is_an_error_predicted_as_nothing(lenet5: Predictor) -> None:
    blank = np.full((2, 84, 84), 230, np.uint8)
    blank[1, 20:60, 40:44] = 30  # a "1" on the second
    part = Part(blank, np.array([3, 1], np.int64))
    assert predict_part(lenet5, blank).tolist()[0] == NOTHING
    r = evaluate_suite(lenet5, suite={"ink": part})["ink"]
    assert r.errors == 1 and r.confusions == ((3, NOTHING, 1),)


def test_only_digit_weights_are_measured() -> None:
    with pytest.raises(WeightsError, match=r"lenet5-sigmoid.*digits 0-9.*fashion"):
        evaluate_suite("lenet5-sigmoid", suite={})


def test_result_as_json_and_table() -> None:
    r = SuiteResult("w", (PartResult("ink", 100, 3, ((8, 1, 2), (2, NOTHING, 1))),
                          PartResult("blur", 100, 9)))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["mean_accuracy"] == pytest.approx(0.94)
    assert d["parts"][0] == {"part": "ink", "total": 100, "errors": 3, "accuracy": 0.97,
                             "confusions": [{"true": 8, "predicted": 1, "count": 2},
                                            {"true": 2, "predicted": -1, "count": 1}]}
    text = format_suite(r)
    assert "97.00 %" in text and "8->1 x2, 2->none x1" in text
    assert text.splitlines()[-1].split() == ["mean", "94.00", "%"]
