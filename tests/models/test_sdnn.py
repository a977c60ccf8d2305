"""The SDNN: LeNet-5 replicated over a line (shapes, columns and their centres, and the
replication of a trained classifier)."""

from __future__ import annotations

import pytest
import torch

from lenet.models import create
from lenet.models.lenet5 import LeNet5
from lenet.models.sdnn import CLASSES, SDNN, prepare


@pytest.mark.parametrize("width", [28, 29, 31, 32, 36, 57, 100, 203])
@pytest.mark.parametrize("margin", [0, 12])
def test_columns_says_how_many_outputs_a_width_gives(width: int, margin: int) -> None:
    model = SDNN(margin=margin).eval()
    out = model(torch.zeros(2, 1, 28, width))
    assert out.shape == (2, model.columns(width), len(CLASSES)) == (2, out.shape[1], 12)
    assert model.columns(width + 4) == model.columns(width) + 1  # one column per 4 px


def test_a_strip_too_narrow_for_a_window_gives_no_column_and_bad_shapes_are_refused() -> None:
    model = SDNN(margin=0)
    assert model.columns(27) == 0
    with pytest.raises(ValueError, match=r"\(B, 1, 28, W\)"):
        model(torch.zeros(1, 1, 32, 40))


def test_from_classifier_is_the_classifier_on_a_28x28_window() -> None:
    torch.manual_seed(0)
    digits = create("lenet5", pretrained=True).eval()
    sdnn = SDNN.from_classifier(digits, margin=0).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        want = digits(x)
        torch.testing.assert_close(sdnn(x)[:, 0, :10], want, rtol=0, atol=1e-5)
        # The same window inside a wider strip (the classifier's zero padding around it):
        # column t sees exactly the 28 px at 4t.
        for t in (0, 3, 7):
            strip = torch.zeros(4, 1, 28, 4 * t + 28 + 9)
            strip[..., 4 * t:4 * t + 28] = x
            torch.testing.assert_close(sdnn(strip)[:, t, :10], want, rtol=0, atol=1e-5)
    # The new classes start below a clear digit.
    assert (sdnn(x)[:, 0, 10:].max(1).values < want.max(1).values).all()


def test_from_classifier_takes_only_lenet5() -> None:
    with pytest.raises(ValueError, match="lenet5"):
        SDNN.from_classifier(create("lenet5-tanh"))
    with pytest.raises(ValueError, match="lenet5"):
        SDNN.from_classifier(LeNet5(num_classes=47))


@pytest.mark.parametrize("margin", [0, 12])
def test_centre_is_the_middle_of_the_pixels_a_column_sees(margin: int) -> None:
    torch.manual_seed(0)
    model = SDNN(margin=margin).eval()
    width = 80
    base = torch.randn(1, 1, 28, width)
    # One copy per input column x, that column replaced by other values: which outputs move.
    moved = base.repeat(width, 1, 1, 1)
    for x in range(width):
        moved[x, 0, :, x] = torch.randn(28) * 3
    with torch.no_grad():
        changed = (model(moved) - model(base)).abs().amax(-1) > 1e-4  # (x, T)
    for t in range(model.columns(width)):
        seen = torch.nonzero(changed[:, t]).flatten()
        # A 32 px window (28 plus C1's padding of 2 each side), clipped to the strip.
        lo, hi = model.centre(t) - 16, model.centre(t) + 16
        assert seen.min().item() == max(lo, 0) and seen.max().item() + 1 == min(hi, width)


def test_the_margin_lets_a_column_centre_on_the_strips_edge() -> None:
    model = SDNN()
    assert model.centre(0) <= 4 and model.centre(model.columns(100) - 1) >= 96


def test_prepare_normalizes_and_pads_with_background() -> None:
    a = torch.full((28, 30), 255, dtype=torch.uint8)
    b = torch.zeros((28, 41), dtype=torch.uint8)
    x, widths = prepare([a, b])
    assert x.shape == (2, 1, 28, 41) and widths.tolist() == [30, 41]
    assert x[0, 0, :, :30].eq(1).all() and x[0, 0, :, 30:].eq(-1).all() and x[1].eq(-1).all()


def test_inference_and_training_forward_agree() -> None:
    # Evaluation pools by strided slices and runs C1 over stacked rows (faster), training by
    # F.max_pool2d and the plain convolution: the same values, to float rounding.
    torch.manual_seed(0)
    model = SDNN()
    x = torch.randn(3, 1, 28, 77)
    with torch.no_grad():
        trained = model.train()(x)
        evaluated = model.eval()(x)
    assert torch.allclose(trained, evaluated, atol=1e-5)


def test_an_ensemble_averages_its_members_logits_in_one_pass() -> None:
    torch.manual_seed(0)
    members = [SDNN().eval() for _ in range(3)]
    both = SDNN.ensemble(members).eval()
    assert both.members == 3 and both.c3.groups == 3 and both.output.in_channels == 3 * 84
    x = torch.randn(2, 1, 28, 75)
    with torch.no_grad():
        want = torch.stack([m(x) for m in members]).mean(0)
        torch.testing.assert_close(both(x), want, rtol=0, atol=1e-5)
        # Its probabilities are the members' geometric mean, renormalized.
        geo = torch.stack([m(x).log_softmax(-1) for m in members]).mean(0).log_softmax(-1)
        torch.testing.assert_close(both(x).log_softmax(-1), geo, rtol=0, atol=1e-5)
    assert sum(p.numel() for p in both.parameters()) < 3 * sum(
        p.numel() for p in members[0].parameters())  # one output layer, shared


def test_an_ensemble_takes_single_sdnns_alike() -> None:
    with pytest.raises(ValueError, match="single SDNNs"):
        SDNN.ensemble([])
    with pytest.raises(ValueError, match="single SDNNs"):
        SDNN.ensemble([SDNN(), SDNN(margin=0)])
    with pytest.raises(ValueError, match="single SDNNs"):
        SDNN.ensemble([SDNN(members=2), SDNN()])
    with pytest.raises(ValueError, match="members 0"):
        SDNN(members=0)
