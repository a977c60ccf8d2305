"""The hand-written lenet5-1998 step against autograd: loss, scores, gradients and updates."""

from __future__ import annotations

import pytest
import torch

from lenet.models import create
from lenet.models.losses import make_loss
from lenet.training.optim import SDLM
from lenet.training.steps.pattern import PatternStep, supports
from tests.training.steps.helpers import assert_matches_autograd, model_and_data


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
@pytest.mark.parametrize("batch", [1, 3])
def test_gradients_match_autograd(loss: str, batch: int) -> None:
    model, x, y = model_and_data()
    step = PatternStep(model, SDLM(model.parameters(), lr=1e-4), loss, rbf_j=0.5)
    assert_matches_autograd(step, model, x[:batch], y[:batch], loss)


def test_updates_match_autograd_sdlm_over_many_patterns() -> None:
    """50 per-pattern SDLM updates at the recipe's rate, by hand and by autograd + SDLM.step,
    end at the same weights (up to float rounding, which every per-pattern step amplifies)."""
    model, x, y = model_and_data(seed=1, n=50)
    twin = create("lenet5-1998")
    twin.load_state_dict(model.state_dict())
    opt_a = SDLM(model.parameters(), lr=2e-5)
    opt_b = SDLM(twin.parameters(), lr=2e-5)
    for m, opt in ((model, opt_a), (twin, opt_b)):
        opt.before_epoch(m, (x, y), "rbf-map")
    fast = PatternStep(model, opt_a, "rbf-map")
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss_fn = make_loss("rbf-map")
    for i in range(len(y)):
        fast(x[i:i + 1], y[i:i + 1])
        opt_b.zero_grad()
        loss_fn(twin(x[i:i + 1]), y[i:i + 1]).backward()
        opt_b.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        moved = (b - initial[name]).abs().max().item()
        assert moved > 1e-4, name  # every parameter really trained
        assert (a - b).abs().max().item() <= 1e-4 * moved, name  # measured <= 3e-6


def test_supports_only_what_it_computes() -> None:
    model = create("lenet5-1998")
    sdlm = SDLM(model.parameters(), lr=1e-4)
    assert supports(model, sdlm, "rbf-map") and supports(model, sdlm, "rbf-mle")
    assert not supports(model, sdlm, "cross-entropy")
    assert not supports(model, torch.optim.SGD(model.parameters(), lr=0.1), "rbf-map")
    other = create("lenet5")
    assert not supports(other, SDLM(other.parameters(), lr=1e-4), "cross-entropy")
    with pytest.raises(ValueError, match="PatternStep needs"):
        PatternStep(model, sdlm, "cross-entropy")
