"""The declared model interfaces: the 1998 network offers them, plain PyTorch layers do not."""

from __future__ import annotations

from torch import nn

from lenet.models import create
from lenet.models.interfaces import (
    CountsConnections,
    CurvatureModel,
    RBFOutput,
    SparseConvolution,
)


def test_the_1998_network_declares_what_the_tools_ask_for() -> None:
    model = create("lenet5-1998")
    assert isinstance(model, CurvatureModel) and isinstance(model, RBFOutput)
    assert model.rbf_bitmaps().shape == (10, 12, 7)
    assert isinstance(model.c3, SparseConvolution) and isinstance(model.c3, CountsConnections)
    assert isinstance(model.s2, CountsConnections) and not isinstance(model.s2, SparseConvolution)


def test_plain_models_and_layers_offer_none() -> None:
    model = create("lenet5")
    for proto in (CurvatureModel, RBFOutput):
        assert not isinstance(model, proto)
    for layer in (nn.Conv2d(1, 6, 5), nn.Linear(4, 2), nn.MaxPool2d(2)):
        assert not isinstance(layer, SparseConvolution | CountsConnections)
