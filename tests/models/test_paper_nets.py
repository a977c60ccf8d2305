"""The paper's other nets (LeNet-1, LeNet-4, the linear classifier and the MLPs): counts."""

from __future__ import annotations

import pytest
import torch

from lenet.analysis.summary import summary_dict
from lenet.models import create, get_spec


@pytest.mark.parametrize(("name", "params", "connections"), [
    ("lenet1", 2_578, 98_442), ("lenet4", 50_698, 262_306), ("linear", 7_850, 7_850),
    ("mlp-300", 238_510, 238_510), ("mlp-1000", 795_010, 795_010),
    ("mlp-300-100", 266_610, 266_610), ("mlp-500-150", 469_160, 469_160),
])
def test_paper_nets_counts_and_forward(name: str, params: int, connections: int) -> None:
    d = summary_dict(name)
    assert d["total_params"] == params
    assert d["total_connections"] == connections
    spec = get_spec(name)
    x = spec.preprocessing(torch.zeros(3, 28, 28, dtype=torch.uint8))
    assert create(name)(x).shape == (3, 10)


def test_lenet1_input_is_a_16x16_digit_centred_in_28x28() -> None:
    prep = get_spec("lenet1").preprocessing
    x = prep(torch.full((1, 28, 28), 255, dtype=torch.uint8))
    assert x.shape == (1, 1, 28, 28)
    ink = x[0, 0] > 0
    assert int(ink.sum()) == 256 and bool(ink[6:22, 6:22].all())
