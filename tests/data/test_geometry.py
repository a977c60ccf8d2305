"""lenet.data.geometry: the one affine warp, stroke width and noise that training, the
robustness curves and the web page's sliders share."""

from __future__ import annotations

import math

import pytest
import torch

from lenet.data import geometry
from lenet.data.distort import Distortion

SIDE = 28


def _dot(row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, SIDE, SIDE)
    x[0, row, col] = 255
    return x


def _centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    """(column, row) of the ink's mean."""
    rows, cols = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(),
                                indexing="ij")
    return float((x[0] * cols).sum() / x.sum()), float((x[0] * rows).sum() / x.sum())


def test_affine_map_composes_rotation_shear_and_scale_about_the_centre() -> None:
    m = geometry.affine_map(rotate=30, scale=1.2, squeeze=0.8, shear=0.3, shift_x=2, shift_y=-1)
    a = math.radians(30)
    rot = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                       dtype=torch.float64)
    lin = rot @ torch.tensor([[1, 0.3], [0, 1]], dtype=torch.float64) @ torch.diag(
        torch.tensor([1.2 * 0.8, 1.2 / 0.8], dtype=torch.float64))
    assert m.shape == (2, 3) and m.dtype == torch.float64
    assert torch.allclose(m, torch.cat([lin, torch.tensor([[2.0], [-1.0]],
                                                          dtype=torch.float64)], 1))
    assert torch.equal(geometry.affine_map(), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]],
                                                           dtype=torch.float64))
    # A batch: one map per value, in the values' dtype.
    s = torch.tensor([0.9, 1.1])
    batch = geometry.affine_map(scale=s, shift_x=torch.tensor([1.0, -1.0]))
    assert batch.shape == (2, 2, 3) and batch.dtype == torch.float32
    assert batch[:, 0, 0].tolist() == pytest.approx([0.9, 1.1])
    assert batch[:, 0, 2].tolist() == [1.0, -1.0]


def test_a_near_identity_affine_map_is_nearly_the_identity(mnist_test) -> None:
    digits = torch.from_numpy(mnist_test[0][:64].copy())
    out = geometry.warp(digits, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert out.dtype == torch.float32 and (out - digits.float()).abs().max() < 1e-2


def test_warp_moves_ink_where_the_forward_map_sends_it() -> None:
    # align_corners=False about pixel 13.5: a whole-pixel shift moves a dot exactly one pixel.
    moved = geometry.warp(_dot(13, 13), geometry.affine_map(shift_x=3, shift_y=-2))
    assert moved[0, 11, 16] == pytest.approx(255, abs=1e-3) and moved.sum() == \
        pytest.approx(255, abs=1e-2)
    # +90 degrees: right of the centre goes up (counter-clockwise on screen).
    up = geometry.warp(_dot(13, 22), geometry.affine_map(rotate=90))
    assert _centre_of_mass(up) == (pytest.approx(13.0, abs=1e-3), pytest.approx(5.0, abs=1e-3))
    # Any map: the centre of mass follows p' = A (p - c) + t + c.
    m = geometry.affine_map(rotate=-20, scale=1.1, squeeze=0.9, shear=0.2, shift_x=1.5)
    col, row = _centre_of_mass(geometry.warp(_dot(10, 17), m))
    want = m[:, :2] @ torch.tensor([17 - 13.5, 10 - 13.5], dtype=torch.float64) + m[:, 2] + 13.5
    assert abs(col - float(want[0])) < 0.2 and abs(row - float(want[1])) < 0.2


def test_training_distortions_are_this_warp() -> None:
    images = torch.zeros(8, SIDE, SIDE, dtype=torch.uint8)
    images[:, 6:22, 12:16] = 255
    d = Distortion()
    out = d(images, torch.Generator().manual_seed(3))
    maps = d.matrices(8, torch.Generator().manual_seed(3))
    assert torch.equal(out, geometry.warp(images, maps))


def test_stroke_whole_and_fractional_pixels() -> None:
    square = torch.zeros(1, SIDE, SIDE)
    square[0, 12:16, 12:16] = 255  # 4x4: one pixel off each side leaves 2x2, one on makes 6x6
    assert int((geometry.stroke(square, 1) > 0).sum()) == 36
    assert int((geometry.stroke(square, 2) > 0).sum()) == 64
    assert int((geometry.stroke(square, -1) > 0).sum()) == 4
    assert torch.equal(geometry.stroke(square, 0), square)
    half = geometry.stroke(square, 0.5)  # halfway between 4x4 and 6x6
    assert float(half[0, 11, 14]) == pytest.approx(127.5) and float(half[0, 14, 14]) == 255
    assert torch.equal(geometry.stroke(square, -0.5), torch.lerp(square, geometry.stroke(
        square, -1), 0.5))
    # The image given is never changed.
    assert int((square > 0).sum()) == 16


def test_noise_is_seeded_clipped_and_new() -> None:
    grey = torch.full((4, SIDE, SIDE), 128, dtype=torch.uint8)

    def noisy(sigma: float, seed: int) -> torch.Tensor:
        return geometry.gaussian(grey, sigma, torch.Generator().manual_seed(seed))

    assert torch.equal(noisy(16, 1), noisy(16, 1)) and not torch.equal(noisy(16, 1), noisy(16, 2))
    assert (noisy(16, 1) - 128).std() == pytest.approx(16, rel=0.05)
    assert noisy(500, 1).min() == 0 and noisy(500, 1).max() == 255
    same = geometry.gaussian(grey, 0)
    assert torch.equal(same, grey.float()) and same.dtype == torch.float32
    sp = geometry.salt_pepper(grey, 0.2, torch.Generator().manual_seed(1))
    assert ((sp == 0) | (sp == 255)).float().mean() == pytest.approx(0.2, abs=0.02)
