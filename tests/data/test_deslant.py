"""lenet.data.deslant: the paper's deslanting by second moments."""

from __future__ import annotations

import pytest
import torch

from lenet.data.deslant import Deslant, deslant, moments, slant


def sheared_bar(k: float) -> torch.Tensor:
    """A 3-pixel-wide vertical bar over rows 4..23, each row shifted by k (y - 13.5) pixels."""
    image = torch.zeros(28, 28)
    xs = torch.arange(28.0)
    for row in range(4, 24):
        centre = 13.5 + k * (row - 13.5)
        # Antialiased: coverage of [centre - 1.5, centre + 1.5] by each pixel [x, x + 1].
        cover = (torch.minimum(xs + 1, torch.tensor(centre + 1.5))
                 - torch.maximum(xs, torch.tensor(centre - 1.5))).clamp(0, 1)
        image[row] = cover
    return image


def test_sheared_bar_comes_back_vertical() -> None:
    upright, slanted = sheared_bar(0.0)[None], sheared_bar(0.5)[None]
    _, _, _, mu11, mu02, mu20 = moments(slanted)
    assert float(mu11 / mu02) == pytest.approx(0.5, abs=0.02)
    assert float(slant(slanted)[0]) == pytest.approx(0.5, abs=0.02)
    out = deslant(slanted)
    _, cx, _, mu11_out, mu02_out, mu20_out = moments(out)
    _, cx_up, _, _, _, mu20_up = moments(upright)
    assert abs(float(mu11_out / mu02_out)) < 0.01
    # The x-spread shrinks from the slanted bar's to about the upright bar's.
    assert float(mu20) > 10 * float(mu20_up)
    assert float(mu20_out) < 1.5 * float(mu20_up) + 0.2
    assert float(cx) == pytest.approx(float(cx_up), abs=0.05)  # the centroid stays put
    assert float(out.sum()) == pytest.approx(float(slanted.sum()), rel=0.01)


def test_mnist_digits_lose_their_slant(mnist_ready: None) -> None:
    from lenet import data

    images, _ = data.load("mnist", "train")
    x = images[:500].float() / 255
    _, _, _, mu11, mu02, _ = moments(x)
    _, _, _, mu11_d, mu02_d, _ = moments(deslant(x))
    before = float((mu11.abs() / mu02).mean())
    after = float((mu11_d.abs() / mu02_d).mean())
    assert before > 0.1  # real digits do slant
    assert after < before / 5
    # grey levels in [0, 255] give the same result up to the scale
    assert torch.allclose(deslant(x * 255) / 255, deslant(x), atol=1e-4)


def test_blank_image_stays_blank() -> None:
    out = deslant(torch.zeros(3, 28, 28))
    assert torch.equal(out, torch.zeros(3, 28, 28))
    assert float(slant(torch.zeros(1, 28, 28))[0]) == 0.0
    one_row = torch.zeros(1, 28, 28)
    one_row[0, 10, 5:20] = 1.0  # no vertical extent: no slant to measure
    assert not deslant(one_row).isnan().any()


def test_transform_accepts_one_digit_or_a_batch() -> None:
    batch = torch.stack([sheared_bar(0.3), sheared_bar(-0.4)])
    expected = deslant(batch)
    t = Deslant()
    assert torch.equal(t(batch[0]), expected[0])
    assert t(batch[:1]).shape == (1, 28, 28)
    assert torch.equal(t(batch[:, None]), expected[:, None])
    assert torch.equal(t(batch), expected)
    assert deslant(batch.double()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        deslant(batch[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_deslant_on_cuda_matches_cpu() -> None:
    batch = torch.stack([sheared_bar(0.3), sheared_bar(-0.4)])
    on_gpu = deslant(batch.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), deslant(batch), atol=1e-5)
