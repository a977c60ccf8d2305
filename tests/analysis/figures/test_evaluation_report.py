"""lenet.analysis.figures.evaluation_report and `lenet evaluate` on real tiny runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.analysis.helpers import TEST_SUBSET, WeightReads, gallery_size, png_ok


def test_evaluation_matches_evaluate_tensors_and_training(runs, tmp_path, monkeypatch) -> None:
    from lenet import data
    from lenet.analysis.evaluate import evaluate_tensors, evaluate_weights
    from lenet.analysis.figures.evaluation_report import evaluation_dict
    from lenet.models import weights
    from lenet.models.losses import make_loss

    run = runs["lenet5"]
    reads = WeightReads(monkeypatch)
    r = evaluation_dict(str(run.run_dir), plot_dir=str(tmp_path), test_subset=None)
    assert reads.count() == 1  # decoded and checked once
    json.dumps(r)  # all of it is JSON
    cm = torch.tensor(r["confusion_matrix"])
    assert cm.shape == (10, 10)
    assert int(cm.sum()) == r["total"] == TEST_SUBSET  # the run's own test subset by default
    assert int(cm.trace()) == r["total"] - r["errors"]
    # The very same numbers as evaluate_tensors on the same inputs, and as training recorded.
    model, meta = weights.load_model(run.run_dir)
    x, y = data.load("mnist", "test")
    ref = evaluate_tensors(model, meta.preprocessing(x[:TEST_SUBSET]), y[:TEST_SUBSET],
                           make_loss("cross-entropy"), 2000)
    assert (r["accuracy"], r["errors"], r["loss"]) == (ref.accuracy, ref.errors, ref.loss)
    assert r["accuracy"] == run.test.accuracy == r["training_test_accuracy"]
    assert evaluate_weights(run.run_dir, test_subset=TEST_SUBSET)["accuracy"] == r["accuracy"]
    # Per-class numbers agree with the matrix.
    for i, row in enumerate(r["per_class"]):
        assert row["support"] == int(cm[i].sum())
        assert row["recall"] == pytest.approx(float(cm[i, i]) / max(int(cm[i].sum()), 1))
    assert len(r["misclassified"]) == r["errors"]
    assert all(w["true"] != w["predicted"] and 0 < w["confidence"] <= 1
               for w in r["misclassified"])
    assert sum(t["count"] for t in r["top_confusions"]) <= r["errors"]
    # PNGs land in --run-dir.
    assert Path(r["plots"]["confusion"]).parent == tmp_path
    png_ok(Path(r["plots"]["confusion"]), (800, 730))
    gallery = png_ok(Path(r["plots"]["misclassified"]), gallery_size(r["errors"]))
    assert gallery.shape[0] > gallery.shape[1] / 20  # one band of digits per 20 mistakes


def test_evaluate_on_the_full_test_set_when_asked(runs, tmp_path) -> None:
    from lenet.analysis.figures.evaluation_report import evaluation_dict

    r = evaluation_dict(str(runs["mlp"].run_dir), test_subset=1234, plots=False)
    assert r["total"] == 1234 == sum(map(sum, r["confusion_matrix"]))
    assert r["plots"] == {}


def test_evaluation_keys_in_their_order(runs) -> None:
    """`lenet evaluate --json`: the summary first, then the tables, mistakes and plots."""
    from lenet.analysis.figures.evaluation_report import evaluation_dict

    r = evaluation_dict(str(runs["mlp"].run_dir), test_subset=100, plots=False)
    assert list(r) == ["weights", "model", "dataset", "loss_name", "accuracy", "loss",
                       "errors", "total", "training_test_accuracy", "test_subset",
                       "run_test_subset", "classes", "per_class", "macro_avg",
                       "confusion_matrix", "top_confusions", "misclassified", "plots"]
