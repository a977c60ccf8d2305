"""The faithful 1998 LeNet-5: structure, counts, codes, layers, and what it declares."""

from __future__ import annotations

import torch

from lenet.analysis.summary import summary_dict
from lenet.models import count_parameters, get_spec
from lenet.models.lenet1998 import (
    C3_TABLE,
    DIGIT_BITMAPS,
    LeNet1998,
    Subsampling,
    rbf_codes,
    squash,
)

PAPER_ROWS = {  # layer: (trainable parameters, connections), Section II-B
    "c1": (156, 122_304), "s2": (12, 5_880), "c3": (1_516, 151_600), "s4": (32, 2_000),
    "c5": (48_120, 48_120), "f6": (10_164, 10_164), "output": (0, 840),
}


def test_summary_matches_the_paper_layer_by_layer() -> None:
    d = summary_dict("lenet5-1998")
    got = {r["name"]: (r["params"], r["connections"]) for r in d["layers"]}
    assert got == PAPER_ROWS
    assert d["total_params"] == 60_000
    assert d["total_connections"] == 340_908
    shapes = {r["name"]: r["output_shape"] for r in d["layers"]}
    assert shapes["c1"] == [6, 28, 28] and shapes["c3"] == [16, 10, 10]
    assert shapes["s4"] == [16, 5, 5] and shapes["c5"] == [120, 1, 1]


def test_c3_connection_table_is_table_one() -> None:
    model = LeNet1998()
    mask = model.c3.mask()
    expected = {0: {0, 1, 2}, 5: {5, 0, 1}, 6: {0, 1, 2, 3}, 11: {5, 0, 1, 2},
                12: {0, 1, 3, 4}, 13: {1, 2, 4, 5}, 14: {0, 2, 3, 5}, 15: {0, 1, 2, 3, 4, 5}}
    for out_map, inputs in expected.items():
        assert {int(i) for i in mask[out_map].nonzero()} == inputs
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    assert int(mask.sum()) == 60
    # The dense weight is zero exactly where the table has no connection.
    dense = model.c3.dense_weight().detach()
    nonzero_pairs = dense.abs().sum((2, 3)) > 0
    assert torch.equal(nonzero_pairs, mask.bool())


def test_absent_c3_connections_are_not_parameters_and_get_no_update() -> None:
    model = LeNet1998()
    assert model.c3.weight.shape == (60, 5, 5)
    assert count_parameters(model.c3) == 1_516
    x = torch.randn(2, 6, 14, 14, requires_grad=True)
    model.c3(x).sum().backward()
    assert model.c3.weight.grad is not None and model.c3.weight.grad.abs().sum() > 0
    # Input map 3 feeds C3 map 0? No (Table I): map 0's output must not depend on it.
    x2 = x.detach().clone()
    x2[:, 3] += 5.0
    with torch.no_grad():
        assert torch.allclose(model.c3(x.detach())[:, 0], model.c3(x2)[:, 0])
        assert not torch.allclose(model.c3(x.detach())[:, 1], model.c3(x2)[:, 1])


def test_bitmaps_are_ten_distinct_plus_minus_one_7x12_codes() -> None:
    assert len(DIGIT_BITMAPS) == 10
    for bitmap in DIGIT_BITMAPS:
        assert len(bitmap) == 12 and all(len(row) == 7 for row in bitmap)
        assert set("".join(bitmap)) <= {"#", "."}
    codes = rbf_codes()
    assert codes.shape == (10, 84)
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(c.tolist()) for c in codes}) == 10
    model = LeNet1998()
    assert "output.codes" in dict(model.named_buffers())
    assert all("codes" not in n for n, _ in model.named_parameters())


def test_rbf_output_scores_are_negative_squared_distances() -> None:
    model = LeNet1998()
    codes = rbf_codes()
    x = torch.randn(3, 84)
    y = ((x[:, None, :] - codes[None]) ** 2).sum(-1)
    assert torch.allclose(model.output(x), -y, atol=1e-4)
    # A code itself is nearest to its own class.
    assert torch.equal(model.output(codes).argmax(1), torch.arange(10))


def test_subsampling_sums_2x2_times_coefficient_plus_bias() -> None:
    layer = Subsampling(2)
    with torch.no_grad():
        layer.coefficient.copy_(torch.tensor([0.5, -2.0]))
        layer.bias.copy_(torch.tensor([1.0, 0.25]))
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    out = layer(x)
    block_sum = x[0, :, 0:2, 0:2].sum((1, 2))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.5, -2.0]) * block_sum
                          + torch.tensor([1.0, 0.25]))
    assert out.shape == (1, 2, 2, 2)
    out.sum().backward()
    # d out / d coefficient = the sum of every 2x2 block of that map; d out / d bias = units.
    assert torch.allclose(layer.coefficient.grad, x[0].sum((1, 2)))
    assert torch.allclose(layer.bias.grad, torch.tensor([4.0, 4.0]))


def test_squashing_and_initialization() -> None:
    assert torch.allclose(squash(torch.tensor([1.0, -1.0, 0.0])), torch.tensor([1.0, -1.0, 0.0]),
                          atol=1e-4)
    torch.manual_seed(0)
    model = LeNet1998()
    for module, fan_in in ((model.c1, 25), (model.c5, 400), (model.f6, 120)):
        assert module.weight.abs().max() <= 2.4 / fan_in
        assert module.weight.abs().max() > 0.9 * 2.4 / fan_in
    assert model.c3.weight[:18].abs().max() <= 2.4 / 75  # maps 0-5: 3 inputs
    assert model.c3.weight[-6:].abs().max() <= 2.4 / 150  # map 15: all 6 inputs


def test_forward_on_preprocessed_digits() -> None:
    spec = get_spec("lenet5-1998")
    assert spec.loss == "rbf-map" and spec.input_size == 32
    x = spec.preprocessing(torch.tensor([[[0] * 28] * 28, [[255] * 28] * 28], dtype=torch.uint8))
    assert torch.allclose(x[0, 0, 0, 0], torch.tensor(-0.1))
    assert torch.allclose(x[1, 0, 16, 16], torch.tensor(1.175))
    assert torch.allclose(x[1, 0, 0, 0], torch.tensor(-0.1))  # the padding is background
    scores = spec.build()(x)
    assert scores.shape == (2, 10) and (scores <= 0).all()


def test_declares_its_rbf_codes_sparse_c3_and_connection_counts() -> None:
    from lenet.models.interfaces import CountsConnections, RBFOutput, SparseConvolution

    model = LeNet1998()
    assert isinstance(model, RBFOutput)
    bitmaps = model.rbf_bitmaps()
    assert bitmaps.shape == (10, 12, 7)
    assert torch.equal(bitmaps.reshape(10, 84), rbf_codes())
    # Row by row as DIGIT_BITMAPS draws it: the "7" starts with a full top bar.
    assert bitmaps[7, 0].tolist() == [1.0] * 7
    assert isinstance(model.c3, SparseConvolution) and not isinstance(model.c1,
                                                                       SparseConvolution)
    assert all(isinstance(m, CountsConnections) for m in (model.s2, model.c3, model.output))
    assert not isinstance(model.c5, CountsConnections)
    assert not isinstance(torch.nn.Conv2d(1, 1, 1), RBFOutput)
