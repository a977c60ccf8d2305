"""SDLM: the Gauss-Newton diagonal against explicit Jacobians, the paper's squared-weight
estimate against a connection-by-connection loop, and the update."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from lenet.models.lenet1998 import (
    EuclideanRBF,
    LeNet1998,
    SparseConv2d,
    Squash,
    Subsampling,
    rbf_codes,
    squash,
)
from lenet.models.losses import make_loss
from lenet.training.optim import SDLM, gauss_newton_diagonal
from lenet.training.optim.sdlm import paper_diagonal, rbf_seed


class TinyConvNet(nn.Module):
    """A shared-weight conv layer and a linear head: small enough for full Jacobians."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


class TinyRBFNet(nn.Module):
    """Features -> 84 squashed states -> the 1998 RBF head, split like LeNet1998."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 84)
        self.output = EuclideanRBF(rbf_codes())

    def curvature_features(self, x: torch.Tensor) -> torch.Tensor:
        return squash(self.fc(x.flatten(1)))

    def curvature_head(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(z)

    def curvature_layers(self) -> list[nn.Module]:
        return [nn.Flatten(), self.fc, Squash()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.curvature_features(x))


class _Call(nn.Module):
    """Runs `model.<method>` so that functional_call can swap in parameters."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.m, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.m, self.method)(x)


def reference_gn_diagonal(model: nn.Module, method: str, head, x, y, loss_fn):
    """(1/P) sum_p diag(J_p^T H_p J_p) from explicit Jacobians and loss Hessians, per pattern."""
    call = _Call(model, method)
    params = {n: p.detach() for n, p in model.named_parameters()}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for p in range(len(y)):
        xp, yp = x[p:p + 1], y[p:p + 1]

        def f(pr, xp=xp):
            return functional_call(call, {f"m.{k}": v for k, v in pr.items()}, (xp,))[0]

        z = f(params)
        jac = jacrev(f)(params)  # name -> (M, *shape)
        h = hessian(lambda zz, yp=yp: loss_fn(head(zz[None]), yp))(z)  # (M, M)
        for n, j in jac.items():
            jm = j.reshape(j.shape[0], -1)
            total[n] += torch.einsum("mk,mn,nk->k", jm, h, jm).view_as(total[n])
    return {n: v / len(y) for n, v in total.items()}


def test_gn_diagonal_matches_explicit_jacobians_cross_entropy() -> None:
    torch.manual_seed(0)
    model = TinyConvNet()
    x, y = torch.randn(6, 1, 6, 6), torch.randint(0, 10, (6,))
    loss_fn = make_loss("cross-entropy")
    got = gauss_newton_diagonal(model, x, y, "cross-entropy", chunk=7)
    want = reference_gn_diagonal(model, "forward", lambda z: z, x, y, loss_fn)
    assert set(got) == set(want)
    for n in want:
        assert torch.allclose(got[n], want[n], rtol=1e-4, atol=1e-7), n
        assert (got[n] >= 0).all()


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
def test_gn_diagonal_with_rbf_layer_as_part_of_the_loss(loss: str) -> None:
    torch.manual_seed(1)
    model = TinyRBFNet()
    x, y = torch.randn(4, 12), torch.randint(0, 10, (4,))
    got = gauss_newton_diagonal(model, x, y, loss, rbf_j=1.5)
    want = reference_gn_diagonal(model, "curvature_features", model.curvature_head, x, y,
                                 make_loss(loss, rbf_j=1.5))
    for n in want:
        assert torch.allclose(got[n], want[n], rtol=1e-4, atol=1e-7), n


def test_rbf_mle_seed_is_two_per_f6_state() -> None:
    # Eq. 8 with the RBF layer in the loss: d2E/dx_j^2 = 2, the paper's seed. For a linear
    # F6 without squashing, h(bias_j) = 2 exactly.
    model = TinyRBFNet()
    model.curvature_features = lambda x: model.fc(x.flatten(1))  # type: ignore[method-assign]
    x, y = torch.randn(5, 12), torch.randint(0, 10, (5,))
    h = gauss_newton_diagonal(model, x, y, "rbf-mle")
    assert torch.allclose(h["fc.bias"], torch.full((84,), 2.0), atol=1e-5)
    assert torch.allclose(h["fc.weight"], 2 * (x ** 2).mean(0).expand(84, 12), atol=1e-5)


def test_random_probe_estimate_is_close_to_exact() -> None:
    torch.manual_seed(2)
    model = TinyConvNet()
    x, y = torch.randn(40, 1, 6, 6), torch.randint(0, 10, (40,))
    exact = gauss_newton_diagonal(model, x, y, "cross-entropy")
    approx = gauss_newton_diagonal(model, x, y, "cross-entropy", probes=64,
                                   generator=torch.Generator().manual_seed(0))
    for n in exact:
        ratio = approx[n].sum() / exact[n].sum()
        assert 0.85 < float(ratio) < 1.15, (n, float(ratio))


def test_sdlm_step_is_lr_over_mu_plus_h_times_gradient() -> None:
    torch.manual_seed(3)
    model = TinyConvNet()
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 10, (8,))
    opt = SDLM(model.parameters(), lr=0.01, probes=None)
    with pytest.raises(RuntimeError, match="before_epoch"):
        model(x).sum().backward()
        opt.step()
    opt.before_epoch(model, (x, y), "cross-entropy")
    h = gauss_newton_diagonal(model, x, y, "cross-entropy")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    loss = make_loss("cross-entropy")(model(x[:1]), y[:1])
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        expected = before[n] - 0.01 / (0.02 + h[n]) * grads[n]
        assert torch.allclose(p.detach(), expected, atol=1e-6), n
    # A new learning rate takes effect on the next step.
    opt.param_groups[0]["lr"] = 0.001
    steps = opt.step_sizes(opt.param_groups[0])
    assert torch.allclose(steps[0], -0.001 / (0.02 + h["conv.weight"]))


# --- the paper's estimator: squared-weight back-propagation (Appendix C) ---------------------


class TinyPaperNet(nn.Module):
    """Every layer kind of lenet5-1998, tiny: conv, subsampling, sparse conv, linear, RBF head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(1, 2, 3)  # 8x8 -> 2 x 6x6
        self.sub = Subsampling(2)  # -> 2 x 3x3
        self.sparse = SparseConv2d(2, ((0,), (0, 1), (1,)), 2)  # -> 3 x 2x2
        self.fc = nn.Linear(12, 84)
        self.output = EuclideanRBF(rbf_codes())
        with torch.no_grad():  # big enough weights that the squashing is not linear
            for p in self.parameters():
                p.uniform_(-0.8, 0.8)

    def curvature_layers(self) -> list[nn.Module]:
        return [self.conv, Squash(), self.sub, Squash(), self.sparse, Squash(), nn.Flatten(),
                self.fc, Squash()]

    def curvature_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.curvature_layers():
            x = layer(x)
        return x

    def curvature_head(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.curvature_features(x))


def _connections(layer: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
    """Every connection of one pattern as (receiving unit, sending unit or None for a bias,
    parameter name, flat index into that parameter), unit indexes flat within one pattern."""
    def flat(shape, *idx):
        return int(torch.tensor(idx) @ torch.tensor(
            [int(torch.tensor(shape[i + 1:]).prod()) for i in range(len(shape))]))

    out = []
    if isinstance(layer, nn.Linear):
        for o in range(layer.out_features):
            out.append((o, None, "bias", o))
            for i in range(layer.in_features):
                out.append((o, i, "weight", o * layer.in_features + i))
    elif isinstance(layer, nn.Conv2d | SparseConv2d):
        k = layer.kernel_size[0] if isinstance(layer, nn.Conv2d) else layer.kernel
        if isinstance(layer, nn.Conv2d):
            pairs = [(o, c, o * in_shape[0] + c) for o in range(out_shape[0])
                     for c in range(in_shape[0])]
        else:
            pairs = [(o, c, n) for n, (o, c) in enumerate(
                (o, c) for o, cs in enumerate(layer.table) for c in cs)]
        for o in range(out_shape[0]):
            for y in range(out_shape[1]):
                for x in range(out_shape[2]):
                    out.append((flat(out_shape, o, y, x), None, "bias", o))
        for o, c, n in pairs:
            for y in range(out_shape[1]):
                for x in range(out_shape[2]):
                    for r in range(k):
                        for s in range(k):
                            out.append((flat(out_shape, o, y, x),
                                        flat(in_shape, c, y + r, x + s), "weight",
                                        n * k * k + r * k + s))
    elif isinstance(layer, Subsampling):
        for m in range(out_shape[0]):
            for y in range(out_shape[1]):
                for x in range(out_shape[2]):
                    out.append((flat(out_shape, m, y, x), None, "bias", m))
                    for dy in range(2):
                        for dx in range(2):
                            out.append((flat(out_shape, m, y, x),
                                        flat(in_shape, m, 2 * y + dy, 2 * x + dx),
                                        "coefficient", m))
    else:
        raise AssertionError(type(layer))
    return out


def reference_paper_diagonal(model: nn.Module, x, y, loss_fn) -> dict[str, torch.Tensor]:
    """Appendix C connection by connection, one pattern at a time, in plain Python floats:
    s_a = f'(a)^2 * s_x; h_k += s_a[i] * x_j^2 (1 for a bias); s_x[j] += u_k^2 * s_a[i]."""
    layers = model.curvature_layers()
    names = {id(m): n for n, m in model.named_modules()}
    h = {n: [0.0] * p.numel() for n, p in model.named_parameters()}
    for p in range(len(y)):
        states = [x[p:p + 1]]
        with torch.no_grad():
            for layer in layers:
                states.append(layer(states[-1]))
        z = states.pop()[0]
        hz = hessian(lambda zz, p=p: loss_fn(model.curvature_head(zz[None]), y[p:p + 1]))(z)
        s = hz.diagonal().clamp(min=0).tolist()
        for layer, a in zip(reversed(layers), reversed(states), strict=True):
            a_flat = a[0].flatten().tolist()
            if isinstance(layer, Squash):
                s = [(1.7159 * 2 / 3 * (1 - math.tanh(2 / 3 * v) ** 2)) ** 2 * sv
                     for v, sv in zip(a_flat, s, strict=True)]
            elif isinstance(layer, nn.Flatten):
                pass
            else:
                out_shape = tuple(layer(a).shape[1:])
                params = {n: q.detach().flatten().tolist() for n, q in layer.named_parameters()}
                s_in = [0.0] * len(a_flat)
                for i, j, pname, k in _connections(layer, tuple(a.shape[1:]), out_shape):
                    xj2 = 1.0 if j is None else a_flat[j] ** 2
                    h[f"{names[id(layer)]}.{pname}"][k] += s[i] * xj2
                    if j is not None:
                        s_in[j] += params[pname][k] ** 2 * s[i]
                s = s_in
    return {n: torch.tensor(v).view_as(q) / len(y) for (n, v), q in
            zip(h.items(), model.parameters(), strict=True)}


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
def test_paper_diagonal_matches_a_connection_by_connection_loop(loss: str) -> None:
    model = TinyPaperNet()
    torch.manual_seed(5)
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 7, 3])
    got = paper_diagonal(model, x, y, loss, rbf_j=1.5)
    want = reference_paper_diagonal(model, x, y, make_loss(loss, rbf_j=1.5))
    assert set(got) == set(want)
    for n in want:
        assert torch.allclose(got[n], want[n], rtol=1e-4, atol=1e-8), n
        assert (got[n] >= 0).all() and got[n].abs().sum() > 0, n


def test_paper_diagonal_rbf_mle_seed_is_two_per_f6_state() -> None:
    # Eq. 8: d2E/dx_j^2 = 2 seeds the recursion; through a linear F6, h(bias) = 2 exactly and
    # h(weight_ij) = 2 * mean_p x_j^2.
    model = TinyRBFNet()
    model.curvature_layers = lambda: [nn.Flatten(), model.fc]  # type: ignore[attr-defined]
    x, y = torch.randn(5, 12), torch.randint(0, 10, (5,))
    h = paper_diagonal(model, x, y, "rbf-mle")
    assert torch.allclose(h["fc.bias"], torch.full((84,), 2.0))
    assert torch.allclose(h["fc.weight"], 2 * (x ** 2).mean(0).expand(84, 12), atol=1e-6)


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
def test_closed_form_rbf_seed_is_the_hessian_diagonal(loss: str) -> None:
    """rbf_seed (the 1998 network's shortcut) against the per-pattern Hessian by autograd, on
    F6 states both near the codes (q spread over digits) and far (one digit dominates)."""
    codes = rbf_codes()
    loss_fn = make_loss(loss, rbf_j=1.5)
    head = LeNet1998().output
    torch.manual_seed(3)
    x = torch.cat([codes[[2, 5]] + 0.3 * torch.randn(2, 84), 1.7 * torch.randn(3, 84)])
    y = torch.tensor([2, 4, 0, 9, 1])
    for p in range(len(x)):
        want = hessian(lambda z, p=p: loss_fn(head(z[None]), y[p:p + 1]))(x[p]).diagonal()
        got = rbf_seed(x[p:p + 1], codes, y[p:p + 1], loss, rbf_j=1.5)[0]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_lenet1998_curvature_layers_compose_to_curvature_features() -> None:
    torch.manual_seed(6)
    model = LeNet1998()
    x = torch.randn(3, 1, 32, 32)
    z = x
    for layer in model.curvature_layers():
        z = layer(z)
    assert torch.equal(z, model.curvature_features(x))
    h = paper_diagonal(model, x, torch.tensor([0, 5, 9]), "rbf-map")
    assert set(h) == {n for n, _ in model.named_parameters()}
    assert all((v >= 0).all() for v in h.values())


def test_sdlm_estimator_choice() -> None:
    assert SDLM(TinyPaperNet().parameters()).estimator(TinyPaperNet()) == "paper"
    assert SDLM(TinyConvNet().parameters()).estimator(TinyConvNet()) == "gauss-newton"
    model = TinyPaperNet()
    opt = SDLM(model.parameters(), hessian="gauss-newton", probes=None)
    assert opt.estimator(model) == "gauss-newton"
    with pytest.raises(ValueError, match="hessian"):
        SDLM(model.parameters(), hessian="exact")
    with pytest.raises(ValueError, match="curvature_layers"):
        paper_diagonal(TinyConvNet(), torch.randn(2, 1, 6, 6), torch.tensor([0, 1]))


def test_sdlm_default_uses_the_paper_estimate_for_models_that_list_their_layers() -> None:
    model = TinyPaperNet()
    torch.manual_seed(7)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    opt = SDLM(model.parameters(), lr=0.01)
    opt.before_epoch(model, (x, y), "rbf-map")
    h = paper_diagonal(model, x, y, "rbf-map")
    for n, p in model.named_parameters():
        assert torch.allclose(opt.state[p]["h"], h[n]), n


def test_sdlm_is_the_trainers_epoch_hook_and_torch_optimizers_are_not() -> None:
    from lenet.training.optim import EpochHook

    model = TinyPaperNet()
    assert isinstance(SDLM(model.parameters()), EpochHook)
    assert not isinstance(torch.optim.SGD(model.parameters(), lr=0.1), EpochHook)


def test_curvature_split_is_declared_by_the_model_protocol() -> None:
    from lenet.models.interfaces import CurvatureModel

    assert isinstance(LeNet1998(), CurvatureModel) and isinstance(TinyRBFNet(), CurvatureModel)
    assert not isinstance(TinyConvNet(), CurvatureModel)


@pytest.mark.parametrize("estimate", ["paper", "gauss-newton"])
def test_estimates_leave_the_training_mode_as_they_found_it(estimate: str) -> None:
    model = TinyPaperNet()
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 4])
    for training in (True, False):
        model.train(training)
        if estimate == "paper":
            paper_diagonal(model, x, y, "rbf-map")
        else:
            gauss_newton_diagonal(model, x, y, "rbf-map", probes=2)
        assert model.training is training
