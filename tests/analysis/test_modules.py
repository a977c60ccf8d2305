"""lenet.analysis.modules: the layers worth drawing, found in every registered model."""

from __future__ import annotations

import pytest
import torch

from lenet.analysis.modules import activations, conv_layers, conv_mask, conv_weight, rbf_bitmaps
from lenet.models.lenet1998 import SparseConv2d


def test_every_registered_model_is_inspectable() -> None:
    from lenet.models import create, get_spec, names

    for name in names():
        model = create(name)
        size = get_spec(name).input_size
        convs = conv_layers(model)
        for _, conv in convs:
            assert conv_weight(conv).dim() == 4
        acts = activations(model, torch.zeros(1, 1, size, size))
        assert all(a.dim() == 3 for _, a in acts)
        fully_connected = not any(isinstance(m, torch.nn.Conv2d | SparseConv2d)
                                  for m in model.modules())
        if fully_connected:  # the MLPs and the linear classifier: nothing to show, no failure
            assert convs == [] and acts == [], name
        else:
            assert len(convs) >= 2 and len(acts) >= 4, name


def test_rbf_bitmaps_found_on_the_1998_network_only() -> None:
    from lenet.models import create, names

    assert rbf_bitmaps(create("lenet5")) is None
    if "lenet5-1998" not in names():
        pytest.skip("lenet5-1998 is not registered")
    bitmaps = rbf_bitmaps(create("lenet5-1998"))
    assert bitmaps is not None and bitmaps.shape == (10, 12, 7)
    assert set(bitmaps.unique().tolist()) == {-1.0, 1.0}
    # The "1" code: its ink (+1) sits in the middle columns, not the outer ones.
    one = bitmaps[1]
    assert one[:, 3].sum() > one[:, 0].sum()


def test_sparse_convolution_kernels_and_table() -> None:
    from lenet.models import create

    model = create("lenet5-1998")
    assert [name for name, _ in conv_layers(model)] == ["c1", "c3", "c5"]
    assert conv_mask(model.c1) is None
    mask = conv_mask(model.c3)
    assert mask is not None and mask.shape == (16, 6) and int(mask.sum()) == 60
    dense = conv_weight(model.c3)
    assert dense.shape == (16, 6, 5, 5) and not dense.requires_grad
    assert torch.equal(dense.abs().sum((2, 3)) > 0, mask.bool())


def test_activations_restore_the_training_mode() -> None:
    from lenet.models import create

    model = create("lenet5").train()
    acts = activations(model, torch.zeros(1, 1, 28, 28))
    assert model.training
    assert [name for name, _ in acts] == ["c1", "s2", "c3", "s4"]
