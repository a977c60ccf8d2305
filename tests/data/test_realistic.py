"""lenet.data.realistic: distortions that make training digits look like preprocessed photos."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lenet.data import realistic as R
from lenet.data.realistic import NOISE_FLOOR, Realistic

# Every step off: each test turns on the one it checks.
NONE = Realistic(p_original=0.0, p_elastic=0.0, p_stroke=0.0, p_blur=0.0, p_lowres=0.0,
                 p_ink=0.0, p_paper=0.0, p_line=0.0, p_noise=0.0, p_jpeg=0.0,
                 affine=replace(R.AFFINE, translate=0.0, scale=0.0, squeeze=0.0, shear=0.0))


def _digits(n: int = 32) -> torch.Tensor:
    """A "7"-like bar shape: a top stroke and a slanted leg, white on black, uint8."""
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 5:8, 7:21] = 255
    for r in range(8, 23):
        c = 19 - (r - 8) // 2
        x[:, r, c - 1:c + 2] = 255
    return x


def _mass(x: torch.Tensor) -> torch.Tensor:
    return x.float().sum((1, 2))


def test_shapes_range_peak_and_seeded() -> None:
    x = _digits()
    out = Realistic()(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and torch.allclose(out.amax((1, 2)), torch.full((32,), 255.0))
    # Preprocessing's noise floor: no grey level is left between 0 and it.
    assert not ((out > 0) & (out < NOISE_FLOOR)).any()
    again = Realistic()(x, torch.Generator().manual_seed(0))
    other = Realistic()(x, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)
    assert not torch.equal(x, torch.zeros_like(x)) and torch.equal(x, _digits())  # untouched


def test_originals_blanks_and_the_all_off_identity() -> None:
    x = _digits(8)
    assert torch.equal(Realistic(p_original=1.0)(x, torch.Generator().manual_seed(0)),
                       x.float())
    # All steps off: the identity warp, up to float rounding.
    assert torch.allclose(NONE(x, torch.Generator().manual_seed(0)), x.float(), atol=1e-2)
    blank = torch.zeros(4, 28, 28)
    assert torch.equal(Realistic()(blank, torch.Generator().manual_seed(0)), blank)
    assert Realistic()(torch.zeros(0, 28, 28), torch.Generator()).shape == (0, 28, 28)


def test_pen_thickens_and_thins_and_the_affine_keeps_the_box() -> None:
    x = _digits(4)
    width = torch.tensor([-0.5, 0.0, 1.0, 1.5])
    thick = R.pen(x.float(), width)
    ink = _mass(thick)
    assert ink[0] < ink[1] < ink[2] < ink[3]
    assert torch.allclose(thick[1], x[1].float())
    # The thicker pen's digit is scaled back: its ink box stays about the 16 px tall bar's.
    pen_only = replace(NONE, p_stroke=1.0, stroke=(1.5, 1.5))
    out = pen_only(x, torch.Generator().manual_seed(0))
    rows = torch.nonzero((out[0] > 127).any(1)).flatten()
    assert 15 <= int(rows[-1] - rows[0]) + 1 <= 19


def test_elastic_moves_ink_smoothly_and_alpha_zero_is_identity() -> None:
    x = _digits(4).float()
    g = torch.Generator().manual_seed(3)
    same = R.elastic(x, torch.zeros(4), 4.0, g)
    assert torch.allclose(same, x, atol=1e-3)
    moved = R.elastic(x, torch.full((4,), 34.0), 4.0, g)
    assert not torch.allclose(moved, x, atol=1.0)
    # A smooth field displaces by a pixel or two, not across the field: the ink stays.
    assert ((_mass(moved) - _mass(x)).abs() / _mass(x) < 0.25).all()


def test_blur_lowres_and_jpeg_keep_the_mean_and_soften() -> None:
    x = _digits(3).float()
    for out in (R.blur(x, torch.tensor([0.5, 1.0, 1.5])), R.lowres(x, 12)):
        assert ((_mass(out) - _mass(x)).abs() / _mass(x) < 0.2).all()
        assert float(out.max()) < 255.0 or float((out - x).abs().sum()) > 0
    b = R.blur(x, torch.tensor([0.5, 1.0, 1.5]))
    edge = (b[:, :, 1:] - b[:, :, :-1]).abs().amax((1, 2))
    assert edge[0] > edge[1] > edge[2]
    flat = torch.full((2, 28, 28), 100.0)
    # A flat grey is one DC coefficient a block: only its quantization step moves it.
    assert torch.allclose(R.jpeg(flat, torch.tensor([50.0, 90.0])), flat, atol=4.0)
    low, high = R.jpeg(x[:2], torch.tensor([10.0, 95.0]))
    assert float((low - x[0]).abs().mean()) > float((high - x[1]).abs().mean())


def test_paper_lines_and_noise_leave_residue_the_floor_cuts() -> None:
    x = _digits(64)
    lines = replace(NONE, p_line=1.0, line=(40.0, 60.0))(x, torch.Generator().manual_seed(0))
    background = lines * (x == 0)
    assert (background.amax((1, 2)) >= 40).all()  # a faint rule across every digit
    paper = replace(NONE, p_paper=1.0, paper=10.0)(x, torch.Generator().manual_seed(0))
    # Residue under the noise floor is background again.
    assert torch.allclose(paper, x.float(), atol=1e-2)


def test_every_step_is_drawn_with_its_probability() -> None:
    x = _digits(400)
    g = torch.Generator().manual_seed(0)
    some = replace(NONE, p_noise=0.3, noise=30.0)(x, g)
    changed = ((some - x.float()).abs() > 1).flatten(1).any(1).float().mean()
    assert 0.22 < float(changed) < 0.38


@pytest.mark.parametrize("name", ["p_elastic", "p_stroke", "p_blur", "p_lowres", "p_ink",
                                  "p_jpeg"])
def test_each_step_alone_changes_digits_and_keeps_them_visible(name: str) -> None:
    x = _digits(16)
    out = replace(NONE, **{name: 1.0})(x, torch.Generator().manual_seed(2))
    assert ((out - x.float()).abs() > 1).any()
    assert (_mass(out) > 0.3 * _mass(x)).all()
