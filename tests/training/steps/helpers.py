"""What the tests of both hand-written lenet5-1998 steps share: digit-like data, and the check of
a step's loss, scores and gradients against autograd."""

from __future__ import annotations

import torch

from lenet.models import create
from lenet.models.lenet1998 import LeNet1998
from lenet.models.losses import make_loss


def model_and_data(seed: int = 0, n: int = 64) -> tuple[LeNet1998, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = create("lenet5-1998")
    # Digit-like inputs in the paper's range: background -0.1, ink up to 1.175.
    x = torch.rand(n, 1, 32, 32).mul(1.275).sub(0.1)
    y = torch.randint(0, 10, (n,))
    return model, x, y


def assert_matches_autograd(step, model: LeNet1998, x: torch.Tensor, y: torch.Tensor,
                            loss: str, rbf_j: float = 0.5) -> None:
    """`step.gradients(x, y)` gives autograd's loss and scores, and every parameter's gradient
    to 1e-5 of its largest entry."""
    value, scores, grads = step.gradients(x, y)
    model.zero_grad()
    ref_scores = model(x)
    ref = make_loss(loss, rbf_j=rbf_j)(ref_scores, y)
    ref.backward()
    torch.testing.assert_close(scores, ref_scores.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(value, ref.detach(), rtol=1e-6, atol=1e-5)
    assert sorted(grads) == sorted(n for n, _ in model.named_parameters())
    for name, p in model.named_parameters():
        scale = p.grad.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-5 * scale, msg=name)
