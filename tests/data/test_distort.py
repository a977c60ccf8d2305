"""lenet.data.distort: the paper's random distortions of the training digits."""

from __future__ import annotations

import torch

from lenet.data.distort import Distortion


def test_distortion_shapes_ranges_and_identity() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(16, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 12:16] = 255
    out = Distortion()(images, g)
    assert out.shape == (16, 28, 28) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.equal(out, images.float())
    # p_original = 1 leaves every digit exactly as it was.
    same = Distortion(p_original=1.0)(images, g)
    assert torch.equal(same, images.float())
    # No scaling, squeezing or shear, translation only: the ink's centre moves by at most 2 px.
    shift = Distortion(scale=0, squeeze=0, shear=0, p_original=0)(images, g)
    xs = torch.arange(28.0).expand(28, 28)  # column index of every pixel
    cx = (shift * xs).sum((1, 2)) / shift.sum((1, 2))
    assert ((cx - 13.5).abs() <= 2.01).all() and ((cx - 13.5).abs() > 0.01).any()
    # The same generator state gives the same distortions.
    a = Distortion()(images, torch.Generator().manual_seed(5))
    b = Distortion()(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_distortion_matrices_respect_documented_ranges() -> None:
    m = Distortion(p_original=0.0).matrices(2000, torch.Generator().manual_seed(1))
    assert (m[:, 0, 2].abs() <= 2).all() and (m[:, 1, 2].abs() <= 2).all()
    assert (m[:, 1, 0] == 0).all()  # shear is horizontal only
    sy = m[:, 1, 1]  # s / q
    assert (sy >= 0.9 / 1.1 - 1e-6).all() and (sy <= 1.1 / 0.9 + 1e-6).all()
    kept = Distortion(p_original=0.5).matrices(4000, torch.Generator().manual_seed(2))
    identity = (kept == torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])).all(-1).all(-1)
    assert 0.45 < float(identity.float().mean()) < 0.55
