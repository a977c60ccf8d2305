"""The SVM rows: libsvm's machines rewritten as tensors, the reduced set, the virtual SVs."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("sklearn")

from lenet.paper.classic import svm
from lenet.paper.classic.base import Context, run
from lenet.paper.classic.data import digits


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> dict:
    ctx = Context(out=tmp_path_factory.mktemp("svm"), train_subset=1000, test_subset=300)
    x, y = digits(ctx, "train", deslant=True)
    xt, _ = digits(ctx, "test", deslant=True)
    kernel = svm.PolyKernel.for_data(x, 5)
    fitted = svm.fit_svc(x, y, kernel, seed=0)
    return {"ctx": ctx, "x": x, "y": y, "xt": xt, "kernel": kernel, "svc": fitted,
            "machines": svm.Machines.from_svc(fitted, kernel)}


def test_machines_reproduce_libsvm(small: dict) -> None:
    dec = small["machines"].decisions(small["xt"])
    svc = small["svc"]
    ours = torch.from_numpy(svc.decision_function(small["xt"].double().numpy()))
    torch.testing.assert_close(dec, ours, rtol=1e-9, atol=1e-9)
    svc.decision_function_shape = "ovr"  # scikit-learn's own votes + confidences
    try:
        ovr = torch.from_numpy(svc.decision_function(small["xt"].double().numpy()))
    finally:
        svc.decision_function_shape = "ovo"
    torch.testing.assert_close(svm.ovr_scores(dec), ovr, rtol=1e-9, atol=1e-9)


def test_cost_counts_what_is_stored() -> None:
    coef = torch.zeros(3, 45, dtype=torch.float64)
    coef[0, :9] = 1.0
    coef[1, 3] = -2.0  # 10 non-zero coefficients in all
    machines = svm.Machines(svm.PolyKernel(4, 0.1), torch.ones(3, 784, dtype=torch.float64),
                            coef, torch.zeros(45, dtype=torch.float64))
    assert svm.PolyKernel(4, 1.0).power_multiplies == 2  # t^2, (t^2)^2
    assert svm.PolyKernel(9, 1.0).power_multiplies == 4  # t^2, t^4, t^8, t^8 * t
    assert machines.macs == 3 * (784 + 1 + 2) + 10
    assert machines.memory == 3 * 784 + 10 + 45


def test_reduced_set_approximates_the_full_machines(small: dict) -> None:
    full = small["machines"]
    reduced = svm.reduce(full, keep=0.5)
    assert len(reduced.vectors) == -(-len(full.vectors) // 2)
    assert reduced.memory < full.memory and reduced.macs < full.macs
    a, b = full.decisions(small["xt"]), reduced.decisions(small["xt"])
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.98
    agree = (full.scores(small["xt"]).argmax(1) == reduced.scores(small["xt"]).argmax(1))
    assert agree.float().mean() > 0.9
    # Keeping every vector, the least-squares refit gives the machines back.
    torch.testing.assert_close(svm.reduce(full, keep=1.0).decisions(small["xt"]), a,
                               rtol=1e-5, atol=1e-5)


def test_virtual_examples_are_the_shifted_vectors() -> None:
    image = torch.zeros(2, 28, 28)
    image[0, 5, 7] = 1.0
    image[1, 0, 27] = 0.5  # on the border: moving up or right pushes it out
    x, y = svm.virtual_set(image.reshape(2, -1), torch.tensor([3, 8]))
    assert x.shape == (10, 784) and y.tolist() == [3, 8] * 5
    moved = x.reshape(10, 28, 28)
    lit = [tuple(m.nonzero().flatten().tolist()) for m in moved]
    assert lit == [(5, 7), (0, 27), (4, 7), (), (6, 7), (1, 27), (5, 6), (0, 26), (5, 8), ()]
    assert moved.sum() == pytest.approx(5 * 1.0 + 3 * 0.5)


def _check_row(name: str, ctx: Context) -> dict:
    out = run(name, ctx)
    assert out.scores.shape == (300, 10) and out.labels.shape == (300,)
    assert out.error < 25.0  # chance is 90 %
    assert out.train_digits == 1000
    vectors = out.extra["vectors"]
    assert out.memory >= vectors * 784 + 45
    assert vectors * 787 < out.macs <= vectors * (784 + 1 + 4 + 45)
    return {"out": out, "vectors": vectors}


def test_poly4_row_is_deterministic(small: dict) -> None:
    a = _check_row("svm-poly4", small["ctx"])["out"]
    b = run("svm-poly4", small["ctx"])
    assert torch.equal(a.scores, b.scores)
    assert a.macs == a.extra["vectors"] * 787 + (a.memory - a.extra["vectors"] * 784 - 45)


def test_reduced_row_keeps_its_share(small: dict) -> None:
    got = _check_row("svm-reduced-poly5", small["ctx"])
    assert got["vectors"] == math.ceil(got["out"].extra["full_vectors"] * svm.KEEP)
    assert got["out"].macs < got["out"].extra["full_macs"]


def test_virtual_row_trains_on_five_copies(small: dict) -> None:
    got = _check_row("vsvm-poly9", small["ctx"])
    assert got["out"].extra["virtual_digits"] == 5 * got["out"].extra["first_vectors"]


def test_rows_are_registered_to_train_on_every_digit() -> None:
    from lenet.paper.classic.base import get

    assert get("svm-poly4").default_train_subset is None
    assert get("vsvm-poly9").needs_sklearn
