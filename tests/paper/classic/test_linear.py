"""lenet.paper.classic.linear: the deslanted linear and pairwise linear rows of Fig. 9."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet.paper.classic import base, linear


def small(tmp_path: Path, train: int = 2000) -> base.Context:
    return base.Context(out=tmp_path, train_subset=train, test_subset=500)


@pytest.mark.slow
def test_linear_row_scores_and_costs(mnist_ready: None, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linear, "LBFGS_ITERATIONS", 30)  # enough for 1,000 digits
    out = base.get("linear-deslant").fit_score(small(tmp_path, train=1000))
    assert out.scores.shape == (500, 10) and out.labels.shape == (500,)
    assert out.error < 18.0  # observed 10.0 % (chance: 90 %)
    assert out.macs == 784 * 10 and out.memory == 785 * 10
    assert out.train_digits == 1000


@pytest.mark.slow
def test_pairwise_row_scores_and_costs(mnist_ready: None, tmp_path: Path) -> None:
    a = base.get("pairwise-deslant").fit_score(small(tmp_path))
    assert a.scores.shape == (500, 10)
    assert a.error < 15.0  # observed 10.2 %
    assert a.macs == 45 * 784 and a.memory == 45 * 785
    # Scores are each class's weakest duel: positive only for a class that beats all nine others
    # (the vote winner), and at most one class can.
    assert ((a.scores > 0).sum(1) <= 1).all()
    assert (a.scores.max(1).values > 0).float().mean() > 0.9


def test_duel_scores_answer_the_class_that_beats_every_other() -> None:
    # pairs (0, 1), (0, 2), (1, 2); > 0 favours the pair's first class
    dec = torch.tensor([[2.0, 1.0, -3.0],  # 0 beats 1 and 2; 2 beats 1
                        [-1.0, 0.5, 4.0]])  # 1 beats 0 and 2; 0 beats 2
    s = linear.duel_scores(dec, classes=3)
    assert torch.equal(s, torch.tensor([[1.0, -3.0, -1.0], [-1.0, 1.0, -4.0]]))
    assert s.argmax(1).tolist() == [0, 1]


def test_pairwise_voting_on_a_three_class_toy() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = torch.arange(3).repeat_interleave(50)
    x = centres[labels] + 0.5 * torch.randn(150, 2, generator=g)
    units = linear.pairwise_fit(linear.augment(x), labels, classes=3)
    assert units.shape == (3, 3)  # pairs (0,1), (0,2), (1,2); 2 weights and a bias each
    queries = torch.tensor([[0.2, -0.1], [3.8, 0.3], [-0.2, 4.1], [2.2, 0.1]])
    scores = linear.pairwise_scores(linear.augment(queries), units, classes=3)
    assert scores.argmax(1).tolist() == [0, 1, 2, 1]
    # Class 0 beats both others at (0.2, -0.1): two votes, plus a tie-break under one vote.
    assert 2.0 < float(scores[0, 0]) < 2.5
    assert torch.equal(scores.round().sum(1), torch.full((4,), 3.0))


def test_ridge_recovers_an_exact_linear_map() -> None:
    g = torch.Generator().manual_seed(1)
    x = linear.augment(torch.randn(300, 5, generator=g))
    w = torch.randn(6, 2, generator=g)
    fitted = linear.ridge(x, x @ w, ridge=1e-8)
    assert torch.allclose(fitted, w, atol=1e-4)
