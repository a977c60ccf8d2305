"""Every layer's activations, read by hooks, against the same layers run by hand."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from lenet.analysis.activations import layer_activations
from lenet.models import create
from lenet.models.lenet1998 import C3_TABLE, rbf_codes, squash
from lenet.models.registry import get_spec, names


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create(name).eval()


def _input(name: str, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    digit = torch.randint(0, 256, (1, 28, 28), generator=g, dtype=torch.uint8)
    return get_spec(name).preprocessing(digit)


def _by_name(acts) -> dict:
    return {layer.name: layer for layer in acts.layers}


def test_lenet5_layers_are_the_activated_outputs():
    m, x = _model("lenet5"), _input("lenet5")
    acts = layer_activations(m, x)
    assert [(la.name, la.kind, la.shape) for la in acts.layers] == [
        ("input", "input", (1, 28, 28)), ("c1", "conv", (6, 28, 28)), ("s2", "pool", (6, 14, 14)),
        ("c3", "conv", (16, 10, 10)), ("s4", "pool", (16, 5, 5)), ("c5", "linear", (120,)),
        ("f6", "linear", (84,)), ("output", "output", (10,))]
    with torch.no_grad():
        c1 = F.relu(m.c1(x))
        s2 = F.max_pool2d(c1, 2)
        c3 = F.relu(m.c3(s2))
        s4 = F.max_pool2d(c3, 2)
        c5 = F.relu(m.c5(s4.flatten(1)))
        f6 = F.relu(m.f6(c5))
        out = m.output(f6)
    got = _by_name(acts)
    for name, want in [("input", x), ("c1", c1), ("s2", s2), ("c3", c3), ("s4", s4),
                       ("c5", c5), ("f6", f6), ("output", out)]:
        torch.testing.assert_close(got[name].values, want[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(acts.scores, m(x)[0], rtol=0, atol=1e-5)
    assert got["c1"].reads == {"type": "conv", "kernel": [5, 5], "stride": [1, 1],
                               "padding": [2, 2], "table": [[0]] * 6, "sparse": False}
    assert got["c3"].reads["table"] == [list(range(6))] * 16
    assert got["s2"].reads["kernel"] == [2, 2]
    assert got["s2"].reads["table"] == [[i] for i in range(6)]
    assert got["c5"].reads == {"type": "dense"} and acts.rbf is None


def test_lenet1998_squashed_layers_c3_table_and_rbf_distances():
    m, x = _model("lenet5-1998"), _input("lenet5-1998")
    acts = layer_activations(m, x)
    assert [(la.name, la.kind, la.shape) for la in acts.layers] == [
        ("input", "input", (1, 32, 32)), ("c1", "conv", (6, 28, 28)), ("s2", "pool", (6, 14, 14)),
        ("c3", "conv", (16, 10, 10)), ("s4", "pool", (16, 5, 5)), ("c5", "conv", (120, 1, 1)),
        ("f6", "linear", (84,)), ("output", "rbf", (10,))]
    with torch.no_grad():
        c1 = squash(m.c1(x))
        s2 = squash(m.s2(c1))
        c3 = squash(m.c3(s2))
        s4 = squash(m.s4(c3))
        c5 = squash(m.c5(s4))
        f6 = squash(m.f6(c5.flatten(1)))
        out = m.output(f6)
    got = _by_name(acts)
    for name, want in [("c1", c1), ("s2", s2), ("c3", c3), ("s4", s4), ("c5", c5),
                       ("f6", f6), ("output", out)]:
        torch.testing.assert_close(got[name].values, want[0], rtol=0, atol=1e-5)
    assert got["c3"].reads["sparse"] is True
    assert got["c3"].reads["table"] == [sorted(t) for t in C3_TABLE]
    codes = rbf_codes()
    assert acts.rbf is not None and acts.rbf.features == "f6"
    assert acts.rbf.codes.shape == (10, 12, 7)
    torch.testing.assert_close(acts.rbf.codes.flatten(1), codes)
    want = (f6[0] - codes).square().sum(1).sqrt()
    torch.testing.assert_close(acts.rbf.distances, want, rtol=0, atol=1e-5)
    # The output is minus the squared distance, so the nearest code is the answer.
    torch.testing.assert_close(acts.rbf.distances.square(), -out[0], rtol=1e-5, atol=1e-4)
    assert acts.rbf.nearest == int(want.argmin()) == int(out[0].argmax())


def test_mlp_hidden_layers():
    m, x = _model("mlp"), _input("mlp")
    acts = layer_activations(m, x)
    assert [(la.kind, la.shape) for la in acts.layers] == [
        ("input", (1, 28, 28)), ("linear", (300,)), ("linear", (100,)), ("output", (10,))]
    with torch.no_grad():
        h1 = F.relu(m.net[1](x.flatten(1)))
        h2 = F.relu(m.net[3](h1))
    torch.testing.assert_close(acts.layers[1].values, h1[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(acts.layers[2].values, h2[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(acts.scores, m(x)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", names())
def test_every_registered_model_ends_in_its_own_scores(name):
    m, x = _model(name), _input(name)
    acts = layer_activations(m, x)
    assert acts.layers[0].kind == "input" and acts.layers[-1].kind in ("output", "rbf")
    torch.testing.assert_close(acts.layers[-1].values, m(x)[0], rtol=0, atol=1e-5)
    for layer in acts.layers:
        assert tuple(layer.values.shape) == layer.shape, layer.name


def test_to_dict_rounds_and_bounds_the_size():
    m, x = _model("lenet5"), _input("lenet5")
    acts = layer_activations(m, x)
    d = acts.to_dict(decimals=4)
    c1 = d["layers"][1]
    assert c1["shape"] == [6, 28, 28] and len(c1["values"]) == 6 * 28 * 28
    assert all(round(v, 4) == v for v in c1["values"])
    assert max(abs(a - b) for a, b in zip(c1["values"], acts.layers[1].values.flatten().tolist(),
                                          strict=True)) <= 5e-5
    small = acts.to_dict(max_values=784 + 4704)  # the input and C1 fit, S2 does not
    assert [la["omitted"] for la in small["layers"]][:3] == [False, False, True]
    assert small["layers"][2]["values"] is None and small["layers"][2]["shape"] == [6, 14, 14]


def test_training_mode_is_restored_and_input_checked():
    m = create("lenet5").train()
    layer_activations(m, _input("lenet5"))
    assert m.training
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        layer_activations(m, torch.zeros(2, 1, 28, 28))


def test_other_threads_running_the_model_are_not_recorded():
    """The server runs the model in several threads: a trace records only its own thread."""
    m, x = _model("lenet5"), _input("lenet5")
    stop = threading.Event()

    def hammer() -> None:
        other = torch.zeros(1, 1, 28, 28)
        while not stop.is_set():
            with torch.no_grad():
                m(other)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            acts = layer_activations(m, x)
            assert len(acts.layers) == 8
            torch.testing.assert_close(acts.layers[0].values, x[0])
    finally:
        stop.set()
        for t in threads:
            t.join(10)
