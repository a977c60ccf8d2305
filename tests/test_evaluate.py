"""lenet.evaluate: one pass over a test set, from tensors or from weights read once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet import weights
from lenet.evaluate import (
    evaluate_detailed,
    evaluate_loaded,
    evaluate_tensors,
    evaluate_weights,
    evaluate_with_scores,
    load,
    run_test_subset,
)
from lenet.losses import make_loss
from lenet.models import create, get_spec

SUBSET = 300  # the test subset the saved "run" says it was trained with


@pytest.fixture
def run(tmp_path: Path, mnist_ready: None) -> Path:
    """A run directory holding an untrained lenet5 that claims a test subset of 300."""
    torch.manual_seed(0)
    spec = get_spec("lenet5")
    meta = weights.WeightsMeta(model="lenet5", preprocessing=spec.preprocessing,
                               dataset="mnist", classes=[str(d) for d in range(10)],
                               test_accuracy=0.25,
                               extra={"config": {"test_subset": SUBSET}, "loss": "cross-entropy"})
    weights.save(tmp_path / "model.safetensors", create("lenet5"), meta)
    return tmp_path


class _Reads:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        self._read = weights.read
        monkeypatch.setattr(weights, "read", self)

    def __call__(self, path):
        self.n += 1
        return self._read(path)


def test_load_reads_the_weights_once(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _Reads(monkeypatch)
    loaded = load(run)
    assert reads.n == 1
    assert loaded.path == run / "model.safetensors"
    assert loaded.meta.model == "lenet5" and not loaded.model.training
    detailed = evaluate_detailed(loaded)
    summary = evaluate_loaded(loaded, test_subset=100)
    assert reads.n == 1  # evaluating a loaded model reads nothing again
    assert detailed.summary["weights"] == summary["weights"] == str(loaded.path)


def test_the_path_and_the_loaded_forms_agree(run: Path) -> None:
    from lenet import data

    by_path = evaluate_weights(run, test_subset=SUBSET)
    assert by_path == evaluate_loaded(load(run), test_subset=SUBSET)
    model, meta = weights.load_model(run)
    x, y = data.load("mnist", "test")
    ref = evaluate_tensors(model, meta.preprocessing(x[:SUBSET]), y[:SUBSET],
                           make_loss("cross-entropy"))
    assert (by_path["accuracy"], by_path["loss"], by_path["errors"], by_path["total"]) == (
        ref.accuracy, ref.loss, ref.errors, ref.total)
    assert by_path["training_test_accuracy"] == 0.25 and by_path["model"] == "lenet5"


def test_detailed_evaluation_defaults_to_the_runs_own_subset(run: Path) -> None:
    loaded = load(run)
    ev = evaluate_detailed(loaded)
    assert ev.run_test_subset == SUBSET == ev.summary["test_subset"] == len(ev.labels)
    assert ev.classes == [str(d) for d in range(10)]
    assert int((ev.predictions != ev.labels).sum()) == ev.summary["errors"]
    assert ((ev.confidence > 0) & (ev.confidence <= 1)).all()
    whole = evaluate_detailed(loaded, test_subset=0)
    assert whole.summary["total"] == 10_000 and whole.run_test_subset == SUBSET


def test_run_test_subset_only_for_the_runs_own_dataset(run: Path) -> None:
    meta = load(run).meta
    assert run_test_subset(meta) == run_test_subset(meta, "mnist") == SUBSET
    assert run_test_subset(meta, "fashion-mnist") == 0


def test_evaluation_restores_the_training_mode() -> None:
    model = create("lenet5").train()
    x, y = torch.randn(5, 1, 28, 28), torch.arange(5)
    result, scores = evaluate_with_scores(model, x, y, make_loss("cross-entropy"), batch_size=2)
    assert model.training
    assert scores.shape == (5, 10) and result.total == 5
    assert result.errors == int((scores.argmax(1) != y).sum())
