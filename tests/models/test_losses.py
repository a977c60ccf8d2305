"""lenet.models.losses: the paper's RBF losses against their direct formulas."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet.models.losses import rbf_map_loss, rbf_mle_loss


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), j=st.floats(0.1, 20.0), n=st.integers(1, 6))
def test_rbf_map_loss_is_equation_9(seed: int, j: float, n: int) -> None:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, 10, generator=g, dtype=torch.float64) * 50  # squared distances
    targets = torch.randint(0, 10, (n,), generator=g)
    direct = sum(float(y[p, targets[p]]) + math.log(math.exp(-j) + sum(
        math.exp(-float(v)) for v in y[p])) for p in range(n)) / n
    assert math.isclose(float(rbf_map_loss(-y, targets, j)), direct, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(float(rbf_mle_loss(-y, targets)),
                        sum(float(y[p, targets[p]]) for p in range(n)) / n, rel_tol=1e-12)
