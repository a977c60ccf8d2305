"""lenet.paper.classic.deslant_mlp: the 400-300-10 net on deslanted 20x20 digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet.paper.classic import base
from lenet.paper.classic.data import box_crop


@pytest.mark.slow
def test_mlp_row_is_seeded_and_costed(mnist_ready: None, tmp_path: Path) -> None:
    ctx = base.Context(out=tmp_path, seed=1, train_subset=2000, test_subset=500, epochs=3)
    a = base.get("mlp-300-deslant").fit_score(ctx)
    assert a.scores.shape == (500, 10)
    assert a.error < 16.0  # observed 10.0 % after 3 passes (chance: 90 %)
    assert a.macs == 400 * 300 + 300 * 10
    assert a.memory == 400 * 300 + 300 + 300 * 10 + 10
    assert a.extra["epochs"] == 3
    b = base.get("mlp-300-deslant").fit_score(ctx)
    assert torch.equal(a.scores, b.scores)


def test_box_crop_keeps_the_ink() -> None:
    images = torch.zeros(3, 28, 28)
    images[0, 2:22, 1:15] = 1.0  # a 20x14 box against the top left corner
    images[1, 8:12, 20:26] = 1.0  # a small box on the right
    out = box_crop(images, 20)
    assert out.shape == (3, 20, 20)
    assert torch.equal(out.sum((1, 2)), images.sum((1, 2)))  # nothing cut
    assert torch.equal(out[0, :, 1:15], torch.ones(20, 14))  # window kept inside the field
    assert float(out[1, 8:12].sum()) == 24.0  # the small box is centred vertically
