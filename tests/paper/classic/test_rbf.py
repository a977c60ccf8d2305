"""lenet.paper.classic.rbf: 1,000 Gaussian units placed by per-class K-means, a linear layer on
top."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet.paper.classic import base, rbf


@pytest.mark.slow
def test_rbf_row_is_seeded_and_costed(mnist_ready: None, tmp_path: Path) -> None:
    ctx = base.Context(out=tmp_path, seed=3, train_subset=2000, test_subset=500)
    a = base.get("rbf").fit_score(ctx)
    assert a.scores.shape == (500, 10)
    assert a.error < 12.0  # observed 7.4 % (chance: 90 %)
    # 1,000 distances of 784 pixels, then 1,000 x 10 weights; centres, widths, weights + bias
    assert a.macs == 1000 * 784 + 1000 * 10
    assert a.memory == 1000 * 784 + 1000 + 1001 * 10
    b = base.get("rbf").fit_score(ctx)
    assert torch.equal(a.scores, b.scores)


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(100, 0) + 0.5 * torch.randn(300, 2, generator=g)
    found, widths = rbf.kmeans(x, 3, 10, torch.Generator().manual_seed(1))
    order = found[:, 0] * 100 + found[:, 1]  # sort the centres to compare them
    assert torch.allclose(found[order.argsort()], centres[[0, 2, 1]], atol=0.2)
    # RMS distance of 2-D Gaussian points with sigma 0.5 to their mean: 0.5 * sqrt(2)
    assert torch.allclose(widths, torch.full((3,), 0.5 * 2 ** 0.5), atol=0.1)
    assert torch.allclose(rbf.squared_distances(x[:5], found),
                          torch.cdist(x[:5], found).pow(2), atol=1e-3)
