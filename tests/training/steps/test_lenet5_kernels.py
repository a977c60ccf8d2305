"""The lenet5 step's kernels on their own: the workspace the step hands them, and the loss
kernel against ``F.cross_entropy``."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("numba", reason="numba is not installed: the compiled step is optional")

from lenet.models.lenet5 import LeNet5
from lenet.training.steps import lenet5_kernels as K


def test_the_step_hands_part_step_every_argument() -> None:
    """x, y, smoothing, scale, the parameters, their gradients, then the workspace: as many
    arrays as part_step takes, the parameters in the model's own order and size."""
    model = LeNet5(num_classes=7)
    ws = K.workspace(20, 7)
    takes = len(inspect.signature(K.part_step.py_func).parameters)
    assert 4 + 2 * len(K.SHAPES) + len(ws) == takes
    assert [n for n, _ in K.SHAPES] == [n for n, _ in model.named_parameters()]
    for (name, shape), p in zip(K.SHAPES, model.parameters(), strict=True):
        assert np.empty(p.numel()).reshape(shape).size == p.numel(), name
    assert [a.dtype for a in ws] == [np.float32] * (len(ws) - 2) + [np.int8] * 2
    assert all(not a.any() for a in ws)
    assert ws[5].shape == (7, 20)  # the logits, which the step returns as scores


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_is_cross_entropy_and_its_gradient(smoothing: float) -> None:
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(10, 24, generator=g) * 4).requires_grad_(True)
    y = torch.randint(0, 10, (24,), generator=g)
    ref = F.cross_entropy(z.t(), y, label_smoothing=smoothing, reduction="sum")
    ref.backward()
    gz = np.zeros((10, 24), np.float32)
    total = K._loss(z.detach().numpy(), y.numpy(), smoothing, 0.5, gz)
    assert total == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(torch.from_numpy(gz), z.grad * 0.5, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="a label outside"):
        K._loss(z.detach().numpy(), np.array([10] * 24), smoothing, 1.0, gz)
