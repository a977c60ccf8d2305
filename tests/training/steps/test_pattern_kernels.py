"""The 1998 step's kernels on their own: the buffer layout the step relies on, and the
rational tanh against torch's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("numba", reason="numba is not installed: the compiled step is optional")

from lenet.models import create
from lenet.training.steps import pattern_kernels as K


def test_the_flat_buffers_hold_every_parameter_once_in_names_order() -> None:
    """GO's slots tile the flat gradient buffer in NAMES order, each the size of its
    parameter: the step's gradients() and the kernels read the same entries."""
    params = dict(create("lenet5-1998").named_parameters())
    assert sorted(K.NAMES) == sorted(params)
    at = 0
    for name, (offset, rows, cols) in zip(K.NAMES, K.GO, strict=True):
        assert offset == at, name
        assert rows * cols == params[name].numel(), name
        at += rows * cols
    assert at == K.N_PARAMS == 60_000


def test_tanh_is_torchs_to_a_few_ulp_and_keeps_nan() -> None:
    """The squashing as the kernels compute it (t = tanh(S a), f = A t) against torch's."""
    a = torch.linspace(-12.0, 12.0, 200_001)
    a = torch.cat([a, torch.tensor([0.0, 1e-6, -3e-4, math.inf, -math.inf, math.nan])])
    f = a.numpy().copy()
    t = np.empty_like(f)
    K._squash(f, t)
    ref = torch.tanh(a * K.SQUASH_S)
    number = ~a.isnan()  # the infinities included: +-1 to within the same bound
    assert (torch.from_numpy(t)[number] - ref[number]).abs().max().item() <= 2.5e-7
    assert math.isnan(t[-1]) and math.isnan(f[-1])
    torch.testing.assert_close(torch.from_numpy(f), torch.from_numpy(t) * K.A, rtol=0, atol=0,
                               equal_nan=True)
