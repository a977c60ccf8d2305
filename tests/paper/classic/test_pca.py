"""lenet.paper.classic.pca: 40 principal components and a quadratic classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from lenet.paper.classic import base, pca


def test_pca_quadratic_row(mnist_ready: None, tmp_path: Path) -> None:
    ctx = base.Context(out=tmp_path, train_subset=2000, test_subset=500)
    out = base.get("pca-quadratic").fit_score(ctx)
    assert out.scores.shape == (500, 10) and out.labels.shape == (500,)
    assert out.error < 12.0  # observed 7.4 % (chance: 90 %)
    # projection 784 x 40, the 820 products, 861 x 10 weights; the mean, projection, weights
    assert out.macs == 784 * 40 + 820 + 861 * 10
    assert out.memory == 784 + 784 * 40 + 861 * 10


def test_components_whiten_and_quadratic_features() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 6, generator=g) * torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    mean, proj = pca.principal_components(x, 3)
    z = (x - mean) @ proj
    assert torch.allclose(z.var(0), torch.ones(3), atol=1e-3)
    assert torch.allclose(z.T @ z / 1999, torch.eye(3), atol=1e-3)  # decorrelated
    # the leading component is the widest axis, x_0
    assert float(proj[0, 0].abs()) > 0.99 * float(proj[:, 0].norm())
    q = pca.quadratic(torch.tensor([[2.0, 3.0]]))
    assert q.tolist() == [[2.0, 3.0, 4.0, 6.0, 9.0, 1.0]]
