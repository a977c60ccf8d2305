"""The training-time forward of lenet5 (activation after pooling, the batch-innermost bf16 pool)
computes exactly what the textbook order computes, in value and in gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lenet.models import create
from lenet.models.pooling import max_pool2x2


def _maps(dtype: torch.dtype, ties: bool, shape=(8, 6, 28, 28)) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    # Small integers give many ties inside 2x2 windows, the case where "which element gets
    # the gradient" is decided by the tie rule (max_pool2d: the first in row-major order).
    x = (torch.randint(-2, 3, shape, generator=g).float() if ties
         else torch.randn(shape, generator=g))
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("ties", [True, False])
def test_max_pool2x2_equals_max_pool2d_bit_for_bit(dtype: torch.dtype, ties: bool) -> None:
    x = _maps(dtype, ties)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = max_pool2x2(a), F.max_pool2d(b, 2)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours, ref)
    g = torch.randn(ref.shape).to(dtype)
    ours.backward(g)
    ref.backward(g)
    assert torch.equal(a.grad, b.grad)


def test_max_pool2x2_falls_back_where_the_fast_route_does_not_apply() -> None:
    odd = _maps(torch.bfloat16, False, (2, 6, 7, 7))  # odd sides: floor like max_pool2d
    assert torch.equal(max_pool2x2(odd), F.max_pool2d(odd, 2))
    wide = _maps(torch.bfloat16, False, (2, 16, 10, 10))
    assert torch.equal(max_pool2x2(wide), F.max_pool2d(wide, 2))


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_lenet5_training_forward_matches_the_textbook_order(bf16: bool,
                                                            channels_last: bool) -> None:
    torch.manual_seed(0)
    model = create("lenet5")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for pool_first in (True, False):
        model._pool_first = pool_first  # False: conv -> act -> pool, as in evaluation
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            scores = model(x)
        F.cross_entropy(scores.float(), y).backward()
        results.append((scores.detach(), [p.grad.clone() for p in model.parameters()]))
    (s1, g1), (s2, g2) = results
    assert torch.equal(s1, s2)
    for a, b in zip(g1, g2, strict=True):
        assert torch.equal(a, b)


def test_lenet5_evaluation_keeps_the_activated_s2_maps() -> None:
    """The visualizations hook S2 in eval mode: its output is pooled ReLU maps, never negative."""
    model = create("lenet5").eval()
    seen = []
    model.s2.register_forward_hook(lambda _m, _i, out: seen.append(out))
    model(torch.randn(2, 1, 28, 28))
    assert len(seen) == 1 and seen[0].min() >= 0
