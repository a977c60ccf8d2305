"""The LeNet-4 hybrids: k-NN and local learning on its features, and boosting's filters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lenet.paper.classic import hybrids
from lenet.paper.classic.base import Context, run


def test_vote_scores_follow_the_majority_and_grade_the_margin() -> None:
    # Query 0: neighbours 7, 7, 1 -> 7. Query 1: 2, 5, 9 -> the nearest (2) breaks the tie.
    dist = torch.tensor([[1.0, 4.0, 9.0, 16.0], [1.0, 4.0, 9.0, 16.0]])
    labels = torch.tensor([[7, 7, 1, 3], [2, 5, 9, 3]])
    scores = hybrids.vote_scores(dist, labels, 3)
    assert scores.argmax(1).tolist() == [7, 2]
    assert scores[0, 7] == pytest.approx(2 + ((1 - 1 / 4) + (1 - 2 / 4)) / 3)
    assert scores[0, 1] == pytest.approx(1 + (1 - 3 / 4) / 3)
    assert scores[0, 3] == 0  # the (k+1)-th neighbour only sets the scale
    assert (scores.floor().sum(1) == 3).all()  # the bonus never adds a vote


def test_local_learning_fits_a_linear_rule_around_each_query() -> None:
    gen = torch.Generator().manual_seed(0)
    refs = torch.randn(400, 2, generator=gen)
    labels = (refs[:, 0] > 0).long() + 2 * (refs[:, 1] > 0).long()  # four quadrants
    queries = torch.tensor([[1.5, 1.5], [-1.5, 1.5], [1.5, -1.5], [-1.5, -1.5]])
    scores = hybrids.local_scores(queries, refs, labels, k=40, ridge=1e-3)
    assert scores.shape == (4, 10)
    assert scores.argmax(1).tolist() == [3, 2, 1, 0]
    assert scores.sum(1).tolist() == pytest.approx([1.0] * 4, abs=1e-4)  # one-hot targets


def test_nearest_finds_the_closest_rows() -> None:
    refs = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    dist, idx = hybrids.nearest(torch.tensor([[0.0, 0.9]]), refs, 2)
    assert idx.tolist() == [[2, 0]]
    assert dist[0].tolist() == pytest.approx([0.01, 0.81])


def test_mixed_filter_takes_as_many_wrong_as_right() -> None:
    wrong = torch.tensor([False, True, False, False, True, False, True, False])
    assert hybrids.mixed_filter(wrong, 4).tolist() == [0, 1, 2, 4]
    assert hybrids.mixed_filter(wrong, 100).tolist() == [0, 1, 2, 3, 4, 6]  # 3 wrong, 3 right
    picked = hybrids.mixed_filter(wrong, 6)
    assert wrong[picked].sum() == 3 and (~wrong[picked]).sum() == 3
    assert hybrids.mixed_filter(torch.zeros(5, dtype=torch.bool), 4).numel() == 0


def test_disagree_filter_keeps_the_first_disagreements() -> None:
    a, b = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([1, 0, 3, 0, 0])
    assert hybrids.disagree_filter(a, b, 2).tolist() == [1, 3]
    assert hybrids.disagree_filter(a, b, 9).tolist() == [1, 3, 4]


def test_filtered_set_draws_seeded_distorted_digits(mnist_ready: None) -> None:
    from lenet import data

    x, y = data.load("mnist", "train")
    x, y = x[:50], y[:50]

    def even_labels(_images: torch.Tensor, labels: torch.Tensor, need: int) -> torch.Tensor:
        return (labels % 2 == 0).nonzero().flatten()[:need]

    sets = [hybrids.filtered_set(x, y, 300, even_labels, torch.Generator().manual_seed(3),
                                 chunk=256) for _ in range(2)]
    (x1, y1), (x2, y2) = sets
    assert len(y1) == 300 and (y1 % 2 == 0).all() and x1.dtype == torch.uint8
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_net_cost_is_lenet4s_summary() -> None:
    from lenet.analysis.summary import summary_dict

    total = summary_dict("lenet4")
    conn, params = hybrids.net_cost()
    assert (conn, params) == (total["total_connections"], total["total_params"])
    assert hybrids.net_cost(with_output=False) == (conn - 121 * 10, params - 121 * 10)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> Context:
    return Context(out=tmp_path_factory.mktemp("hybrids"), train_subset=1000, test_subset=300,
                   epochs=1, log=lambda _s: None)


@pytest.mark.slow
def test_knn_and_local_rows_share_one_trained_net(ctx: Context) -> None:
    said: list[str] = []
    knn = run("lenet4-knn", ctx)
    local = run("lenet4-local", replace(ctx, log=said.append))
    assert any("reusing" in s for s in said)  # the second row did not train again
    conn, params = hybrids.net_cost(with_output=False)
    for out in (knn, local):
        assert out.scores.shape == (300, 10) and out.train_digits == 1000
    # One pass of the recipe on 1,000 digits barely moves LeNet-4 from its init, so these are
    # nearly random features; chance is 90 %.
    assert knn.error < 30.0 and local.error < 55.0
    assert knn.macs == conn + 1000 * 120 and knn.memory == params + 1000 * 120
    assert local.macs > knn.macs and local.memory == knn.memory
    assert torch.equal(run("lenet4-knn", ctx).scores, knn.scores)


@pytest.mark.slow
def test_train_net_is_seeded(mnist_ready: None) -> None:
    from lenet import data

    x, y = data.load("mnist", "train")
    cfg = hybrids.lenet4_config(Context(out=Path("unused"), epochs=1))
    nets = [hybrids.train_net(x[:256], y[:256], cfg, 5, lambda _s: None) for _ in range(2)]
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_boosted_row(tmp_path: Path, mnist_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hybrids, "DRAWS", 4)  # bounded filtering: 4 x 600 candidates each
    ctx = Context(out=tmp_path, train_subset=600, test_subset=300, epochs=1, log=lambda _s: None)
    out = run("boosted-lenet4", ctx)
    conn, params = hybrids.net_cost()
    nets = out.extra["nets"]
    assert out.scores.shape == (300, 10) and out.error < 90.0
    assert (out.macs, out.memory) == (nets * conn, nets * params)
    # One pass leaves net 1 nearly untrained, so it is wrong often: net 2 gets its full set.
    assert out.extra["net2_digits"] == 600 and nets >= 2
    assert out.scores.sum(1).tolist() == pytest.approx([float(nets)] * 300, abs=1e-4)
