"""lenet.analysis.evaluate: one pass over a test set, from tensors or from weights read once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.analysis.evaluate import (
    error_bound,
    evaluate_detailed,
    evaluate_loaded,
    evaluate_tensors,
    evaluate_weights,
    evaluate_with_scores,
    load,
    read_at_error,
    run_test_subset,
)
from lenet.models import create, get_spec, weights
from lenet.models.losses import make_loss

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


# --------------------------------------------------------------------------- rejection
def _table(rows: list[tuple[float, bool]], classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores with the given (margin, correct) per digit: the predicted class (0) scores the
    margin, the others 0; the label is 0 when correct, else 1."""
    scores = torch.zeros(len(rows), classes)
    scores[:, 0] = torch.tensor([m for m, _ in rows])
    labels = torch.tensor([0 if ok else 1 for _, ok in rows])
    return scores, labels


def test_rejection_on_a_hand_made_table() -> None:
    from lenet.analysis.evaluate import rejection_at, rejection_curve

    # 10 digits, 2 wrong (margins 0.1 and 0.3); by hand: rejecting k = 0, 1, 2, 3 of the least
    # confident leaves 2/10, 1/9, 1/8, 0/7 wrong.
    scores, labels = _table([(0.1, False), (0.2, True), (0.3, False), (0.9, True)]
                            + [(1.0 + i / 10, True) for i in range(6)])
    curve = rejection_curve(scores, labels)
    assert curve.rejected[:4].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert torch.allclose(curve.error[:4], torch.tensor([20.0, 100 / 9, 12.5, 0.0],
                                                        dtype=torch.float64))
    assert rejection_at(scores, labels) == 30.0  # 0.5 %: both mistakes must go
    assert rejection_at(scores, labels, 12.5) == 10.0  # the first point under 12.5 %
    assert rejection_at(scores, labels, 20.0) == 0.0  # already there: reject nothing
    # The answer depends on the margins, not on the order of the digits.
    perm = torch.tensor([7, 2, 9, 0, 4, 1, 8, 3, 6, 5])
    assert rejection_at(scores[perm], labels[perm]) == 30.0


def test_tied_margins_are_rejected_together() -> None:
    from lenet.analysis.evaluate import rejection_at, rejection_curve

    # A wrong and a right digit share the lowest margin: a threshold on the margin rejects
    # both or neither, whatever their order, so 50 % (not 25 %) must go.
    for rows in ([(0.1, False), (0.1, True), (0.5, True), (0.5, True)],
                 [(0.1, True), (0.1, False), (0.5, True), (0.5, True)]):
        scores, labels = _table(rows)
        assert rejection_curve(scores, labels).rejected.tolist() == [0.0, 50.0]
        assert rejection_at(scores, labels) == 50.0


def test_rejection_already_below_target_and_unreachable() -> None:
    from lenet.analysis.evaluate import rejection_at

    right, labels = _table([(0.2, True), (0.4, True)])
    assert rejection_at(right, labels) == 0.0 and rejection_at(right, labels, 0.0) == 0.0
    # 1 mistake in 200 digits is exactly 0.5 %, despite floating point.
    scores, labels = _table([(1.0, True)] * 199 + [(2.0, False)])
    assert rejection_at(scores, labels) == 0.0
    assert rejection_at(scores, labels, 0.4) is None  # the mistake is the most confident one
    # The most confident digit is wrong: only rejecting every digit would do -> None, not 100.
    scores, labels = _table([(0.1, True), (0.2, True), (0.9, False)])
    assert rejection_at(scores, labels) is None
    # One tie group holding a mistake: nothing can be rejected without rejecting everything.
    scores, labels = _table([(1.0, True), (1.0, False), (1.0, True)])
    assert rejection_at(scores, labels) is None


def test_rejection_counts_what_the_error_counts_and_checks_its_input() -> None:
    from lenet.analysis.evaluate import margins, rejection_at

    # A NaN score row is the least confident; ties in the top score go to the first class,
    # as argmax (and so the test error) decides.
    scores = torch.tensor([[float("nan"), 0.0], [1.0, 1.0], [3.0, 0.0]])
    assert margins(scores)[0] == float("-inf") and margins(scores)[1] == 0.0
    assert rejection_at(scores, torch.tensor([0, 0, 0])) == 0.0  # argmax of [nan, 0] is 0
    assert rejection_at(scores, torch.tensor([1, 0, 0])) == 100 / 3  # the NaN row goes first
    assert rejection_at(scores, torch.tensor([0, 1, 0]), 0.0) == 200 / 3
    with pytest.raises(ValueError, match="target error"):
        rejection_at(scores, torch.tensor([0, 0, 0]), 100.0)
    with pytest.raises(ValueError, match="score rows"):
        rejection_at(scores, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="classes >= 2"):
        margins(torch.zeros(3, 1))


def test_paper_figures_of_saved_weights(run: Path) -> None:
    """On the run's own test subset: the error evaluate reports, a rejection, a speed."""
    from lenet.analysis.evaluate import paper_figures, rejection_at, seconds_per_digit

    loaded = load(run)
    fig = paper_figures(loaded)
    ev = evaluate_detailed(loaded)
    assert fig["test_digits"] == SUBSET
    assert fig["error"] == pytest.approx(100 * ev.summary["errors"] / SUBSET)
    assert ev.scores is not None and ev.scores.shape == (SUBSET, 10)
    assert fig["rejection"] == rejection_at(ev.scores, ev.labels)
    assert 0 < fig["seconds_per_digit"] < 1
    model = create("lenet5")
    assert 0 < seconds_per_digit(model, torch.zeros(5, 1, 28, 28), batch_size=2) < 1


def test_read_at_error_accepts_the_most_confident_while_errors_stay_under_the_limit():
    rng = np.random.default_rng(0)
    conf = rng.random(1000)
    correct = np.ones(1000, bool)
    correct[np.argsort(conf)[:100]] = False  # the 100 least confident are wrong
    share, threshold = read_at_error(conf, correct)
    # 900 right; 1 % of the accepted may be wrong: 909 accepted, 9 of them wrong
    assert share == pytest.approx(0.909) and threshold == pytest.approx(np.sort(conf)[91])
    assert read_at_error(conf, np.ones(1000, bool)) == (1.0, conf.min())
    assert read_at_error(conf, np.zeros(1000, bool)) == (0.0, None)
    assert read_at_error(np.array([]), np.array([], bool)) == (0.0, None)


def test_readings_of_equal_confidence_are_accepted_or_rejected_together():
    conf = np.array([0.9, 0.5, 0.5, 0.5])
    assert read_at_error(conf, np.array([True, True, False, True])) == (0.25, 0.9)
    assert read_at_error(conf, np.array([True, True, False, True]), max_error=0.25) == (1.0, 0.5)
    with pytest.raises(ValueError, match="differ"):
        read_at_error(conf, np.array([True]))


def test_with_z_the_error_rates_upper_bound_is_kept_to_the_limit():
    rng = np.random.default_rng(0)
    conf = rng.random(1000)
    correct = np.ones(1000, bool)
    correct[np.argsort(conf)[:100]] = False
    share, threshold = read_at_error(conf, correct, z=1.645)
    accepted = conf >= threshold
    wrong = int((accepted & ~correct).sum())
    assert share < 0.909 and error_bound(wrong, int(accepted.sum())) <= 0.01
    # One more reading (the next less confident) would break the bound.
    more = conf >= np.sort(conf[conf < threshold])[-1]
    assert error_bound(int((more & ~correct).sum()), int(more.sum())) > 0.01


def test_the_error_bound_lies_above_the_rate_seen_and_closes_on_it_with_more_readings():
    n = np.array([100, 1_000, 100_000])
    bound = error_bound(n // 100, n)
    assert (bound > 0.01).all() and (np.diff(bound) < 0).all() and bound[-1] < 0.0106
    assert error_bound(np.array([0]), np.array([10]))[0] > 0.1  # ten right prove little
