"""lenet.analysis.metrics by hand: confusion matrix, per-class scores, top confusions."""

from __future__ import annotations

import pytest
import torch

from lenet.analysis import metrics as M


def test_confusion_matrix_and_per_class_by_hand() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2, 1])
    cm = M.confusion_matrix(labels, preds, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    rows = M.per_class(cm, ["a", "b", "c"])
    assert rows[0]["precision"] == pytest.approx(2 / 3)
    assert rows[0]["recall"] == pytest.approx(2 / 3)
    assert rows[1]["precision"] == pytest.approx(2 / 4) and rows[1]["recall"] == 1.0
    assert rows[1]["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert rows[2]["precision"] == 1.0 and rows[2]["recall"] == pytest.approx(0.5)
    assert [r["support"] for r in rows] == [3, 2, 4]
    top = M.top_confusions(cm, ["a", "b", "c"], k=10)
    assert [(t["true"], t["predicted"], t["count"]) for t in top] == [
        ("a", "b", 1), ("c", "a", 1), ("c", "b", 1)]
    wrong = M.misclassified(labels, preds, torch.full((9,), 0.5), ["a", "b", "c"])
    assert [w["index"] for w in wrong] == [1, 5, 8]
    text = M.format_confusion(cm, ["a", "b", "c"])
    assert text.splitlines()[3].split() == ["c", "1", "1", "2"]


def test_a_class_never_predicted_has_zero_precision_not_nan() -> None:
    cm = M.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    rows = M.per_class(cm, ["0", "1"])
    assert rows[1] == {"class": "1", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_classification_report_is_the_pieces_together() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2, 1])
    classes = ["a", "b", "c"]
    cm, tables = M.classification_report(labels, preds, classes, top=2)
    assert torch.equal(cm, M.confusion_matrix(labels, preds, 3))
    assert list(tables) == ["per_class", "macro_avg", "confusion_matrix", "top_confusions"]
    assert tables["per_class"] == M.per_class(cm, classes)
    assert tables["macro_avg"] == M.macro_average(tables["per_class"])
    assert tables["confusion_matrix"] == cm.tolist()
    assert tables["top_confusions"] == M.top_confusions(cm, classes, 2)
