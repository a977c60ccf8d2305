"""SDLM: the Gauss-Newton diagonal against an independent Jacobian computation, and the update."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from lenet.losses import make_loss
from lenet.models.lenet1998 import EuclideanRBF, rbf_codes, squash
from lenet.optim import SDLM, gauss_newton_diagonal


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
