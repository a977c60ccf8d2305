"""Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C), for any model.

Every parameter w_k gets its own step ε_k = η / (μ + h_kk), with h_kk an estimate of
∂²E/∂w_k² re-computed on a sample of patterns before every pass (:meth:`SDLM.before_epoch`,
the trainer's :class:`~lenet.training.optim.EpochHook`) and held fixed during the pass. Two
estimates: the paper's squared-weight back-propagation (:func:`paper_diagonal`, for a
:class:`~lenet.models.interfaces.CurvatureModel` such as ``lenet5-1998``) and the Gauss-Newton
diagonal (:func:`gauss_newton_diagonal`, any model). The derivation, where each estimate is
seeded and how the two differ: ``docs/sdlm.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast, overload

import torch
from torch import nn
from torch.func import functional_call, grad, hessian, vjp, vmap

from lenet.models import eval_mode
from lenet.models.interfaces import CurvatureModel
from lenet.models.lenet1998 import LeNet1998, SparseConv2d, Subsampling
from lenet.models.losses import make_loss
from lenet.runtime.threads import threads

MU = 0.02
HESSIANS = ("auto", "paper", "gauss-newton")


class _Body(nn.Module):
    """Wraps the part of a model below the curvature point so that functional_call can run it:
    a :class:`CurvatureModel`'s features, any other model whole."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.split = isinstance(model, CurvatureModel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:  # isinstance asked once, in __init__: a Protocol check is slow
            return cast(CurvatureModel, self.model).curvature_features(x)
        return self.model(x)


def _head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What turns the curvature point into scores: a :class:`CurvatureModel`'s head (the loss
    then covers it), nothing for any other model."""
    return model.curvature_head if isinstance(model, CurvatureModel) else (lambda z: z)


def _eigh_one_thread(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Hundreds of tiny LAPACK calls: a second intra-op thread buys nothing, and on a busy CPU
    # waiting for it made this many times slower.
    with threads(1):
        return torch.linalg.eigh(h)


def gauss_newton_diagonal(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                          loss: str | Callable = "cross-entropy", *, rbf_j: float = 1.0,
                          probes: int | None = None, chunk: int = 64,
                          generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The Gauss-Newton diagonal, averaged over the patterns, per trainable parameter name.

    ``loss`` is a name from :mod:`lenet.models.losses` or a function ``(scores, targets) -> mean
    loss``; it is applied to single patterns, so E_p is the per-pattern loss. ``probes=None`` is
    exact (one vector-Jacobian product per column of L_p). ``probes=k`` uses k random-sign
    combinations L_p v (v uniform in {-1, +1}^M) per pattern instead, an unbiased estimate
    because E[(Jᵀ L v)²] = diag(Jᵀ L Lᵀ J); with 500 patterns its relative error is a few percent
    and it costs k instead of M products per pattern.
    """
    loss_fn = make_loss(loss, rbf_j=rbf_j) if isinstance(loss, str) else loss
    body, head = _Body(model), _head(model)
    params = {f"model.{n}": p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {f"model.{n}": p.detach() for n, p in model.named_parameters()
              if not p.requires_grad}
    frozen.update({f"model.{n}": b for n, b in model.named_buffers()})
    # The paper's nets have no dropout or batch norm; eval mode keeps any such layer fixed.
    with eval_mode(model):
        with torch.no_grad():
            z = body(inputs)

        def pattern_loss(zp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
            return loss_fn(head(zp[None]), yp[None])

        hess = vmap(hessian(pattern_loss))(z.detach(), targets)  # (P, M, M)
        evals, evecs = _eigh_one_thread(hess)
        factors = evecs * evals.clamp(min=0).sqrt()[:, None, :]  # columns l_pm, H_p = L Lᵀ
        if probes is not None:
            signs = torch.randint(0, 2, (len(targets), factors.shape[-1], probes),
                                  generator=generator, device="cpu").to(factors) * 2 - 1
            factors = factors @ signs / probes ** 0.5  # (P, M, probes)

        # One (pattern, column) pair per row: row r holds x_p and the cotangent l, and its
        # per-row gradient of <body(x_p), l> is J_pᵀ l, whose square is summed into h.
        m_cols = factors.shape[-1]
        pattern_of_row = torch.arange(len(targets), device=inputs.device).repeat_interleave(m_cols)
        cotangents = factors.transpose(1, 2).reshape(-1, factors.shape[1])

        def row_grad(x: torch.Tensor, cot: torch.Tensor) -> dict[str, torch.Tensor]:
            def projected(pr: dict[str, torch.Tensor]) -> torch.Tensor:
                return (functional_call(body, {**pr, **frozen}, (x[None],))[0] * cot).sum()

            return grad(projected)(params)

        total = {k: torch.zeros_like(p) for k, p in params.items()}
        for start in range(0, len(cotangents), chunk):
            rows = pattern_of_row[start:start + chunk]
            part = vmap(row_grad)(inputs[rows], cotangents[start:start + chunk])
            for k, v in part.items():
                total[k] += v.square().sum(0)
    n = max(len(targets), 1)
    return {k.removeprefix("model."): v / n for k, v in total.items()}


def _paper_layer_kind(layer: nn.Module) -> str:
    """How :func:`paper_diagonal` treats ``layer``: "linear", "flatten" or "pointwise"."""
    if isinstance(layer, nn.Conv2d | nn.Linear | SparseConv2d | Subsampling):
        return "linear"
    if isinstance(layer, nn.Flatten):
        return "flatten"
    if next(layer.parameters(), None) is None:
        return "pointwise"
    raise NotImplementedError(
        f"paper_diagonal: no squared-weight rule for {type(layer).__name__}; use "
        "hessian='gauss-newton'")


def paper_diagonal(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                   loss: str | Callable = "cross-entropy", *, rbf_j: float = 1.0
                   ) -> dict[str, torch.Tensor]:
    """The paper's h_kk (Appendix C), averaged over the patterns, per trainable parameter name.

    ``model.curvature_layers()`` lists, in order, the modules whose composition is the part
    below the curvature point (``curvature_features``, or the whole model): parametrized
    layers of a whitelisted kind (Conv2d, Linear, SparseConv2d, Subsampling: each connection
    u_ij is one parameter entry, a_i = sum_j u_ij x_j + b_i), nn.Flatten, and parameter-free
    pointwise functions (the squashing; anything shape-preserving without parameters is taken
    to be pointwise). One batched forward pass records each layer's input, then, all patterns
    at once:

    - seed: s = diag(∂²E_p/∂z²), the diagonal of the loss Hessian in z, clamped at 0 (2 per
      F6 state for Eq. 8, positive for Eq. 9: see ``docs/sdlm.md``);
    - pointwise f: s <- f'(a)² s, f' by autograd (the function is elementwise);
    - linear layer with input x: h(weights) += vjp_W[op(x², W)](s) = Σ_{(i,j)∈V_k} s_i x_j² and
      h(bias) += Σ_i s_i (bias input 1), both from the layer's own op with x squared; then
      s <- vjp_x[op(·, W²)](s) = Σ_k u_ki² s_k, the same op with every weight squared.

    Every term is ≥ 0, the off-diagonal terms of ∂²E/∂a² are dropped at every layer, and a shared
    weight's h sums over its connections, as in the paper. The sums are over the batch; dividing
    by the pattern count gives the mean of the per-pattern h.
    """
    loss_fn = make_loss(loss, rbf_j=rbf_j) if isinstance(loss, str) else loss
    if not isinstance(model, CurvatureModel):
        raise ValueError(f"paper_diagonal: {type(model).__name__} has no curvature_layers(); "
                         "use hessian='gauss-newton'")
    head = _head(model)
    layers = list(model.curvature_layers())
    kinds = [_paper_layer_kind(layer) for layer in layers]
    module_names = {id(m): n for n, m in model.named_modules()}
    with eval_mode(model):
        with torch.no_grad():
            states = [inputs]
            for layer in layers:
                states.append(layer(states[-1]))
            z = states.pop()

        def pattern_loss(zp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
            return loss_fn(head(zp[None]), yp[None])

        if isinstance(model, LeNet1998) and loss in ("rbf-map", "rbf-mle"):
            s = rbf_seed(z, model.output.codes, targets, loss, rbf_j).clamp(min=0)
        else:
            flat = z.reshape(len(z), -1)
            hess = vmap(hessian(lambda zp, yp: pattern_loss(zp.view(z.shape[1:]), yp)))(
                flat, targets)
            s = hess.diagonal(dim1=1, dim2=2).clamp(min=0).reshape(z.shape)

        h = _squared_weight_backward(layers, kinds, states, s, module_names)
    n = max(len(targets), 1)
    return {k: v / n for k, v in h.items()}


def rbf_seed(x: torch.Tensor, codes: torch.Tensor, targets: torch.Tensor, loss: str,
             rbf_j: float = 1.0) -> torch.Tensor:
    """diag(∂²E_p/∂x²) for the 1998 RBF layer y_i = Σ_j (x_j - w_ij)² under Eq. 8 or Eq. 9,
    per pattern (P, 84), in closed form: what the generic per-pattern Hessian gives (a test
    keeps them equal) for a fraction of its cost (84 second-order passes per pattern).

    With d_ij = ∂y_i/∂x_j = 2 (x_j - w_ij) and ∂²y_i/∂x_j² = 2: Eq. 8 (E = y_D) gives 2. Eq. 9
    (E = y_D + log(e^-j + Σ_i e^-y_i)), q_i the softmax over (-j, -y_0, ..., -y_9) at digit i:
    ∂E/∂x_j = d_Dj - Σ_i q_i d_ij, and with ∂q_i/∂x_j = q_i (Σ_k q_k d_kj - d_ij),
    ∂²E/∂x_j² = 2 - 2 Σ_i q_i + Σ_i q_i d_ij² - (Σ_i q_i d_ij)²."""
    if loss == "rbf-mle":
        return torch.full_like(x, 2.0)
    d = 2.0 * (x[:, None, :] - codes)  # (P, 10, 84)
    y = d.square().sum(-1) / 4.0  # (P, 10)
    logits = torch.cat([y.new_full((len(y), 1), -rbf_j), -y], dim=1)
    q = torch.softmax(logits, dim=1)[:, 1:, None]  # (P, 10, 1)
    mean_d = (q * d).sum(1)
    return 2.0 - 2.0 * q.sum(1) + (q * d.square()).sum(1) - mean_d.square()


def _squared_weight_backward(layers: list[nn.Module], kinds: list[str],
                             states: list[torch.Tensor], s: torch.Tensor,
                             module_names: dict[int, str]) -> dict[str, torch.Tensor]:
    """Appendix C's recursion from the seed `s` down through `layers` (each layer's input in
    `states`): the sum over the batch of every trainable parameter's h terms, by name."""
    h: dict[str, torch.Tensor] = {}
    for depth in range(len(layers) - 1, -1, -1):
        layer, kind, x = layers[depth], kinds[depth], states[depth]
        if kind == "flatten":
            s = s.reshape(x.shape)
        elif kind == "pointwise":
            with torch.enable_grad():
                a = x.detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(layer(a).sum(), a)
            s = slope.square() * s
        else:
            params = dict(layer.named_parameters())
            prefix = module_names[id(layer)]
            x2 = x.square()
            pull_w = vjp(lambda pr, x2=x2, layer=layer: functional_call(layer, pr, (x2,)),
                         {k: v.detach() for k, v in params.items()})[1]
            for k, v in pull_w(s)[0].items():
                if params[k].requires_grad:
                    name = f"{prefix}.{k}" if prefix else k
                    h[name] = h.get(name, 0) + v
            if depth > 0:
                squared = {k: v.detach().square() for k, v in params.items()}
                pull_x = vjp(lambda xx, layer=layer, sq=squared:
                             functional_call(layer, sq, (xx,)), x)[1]
                (s,) = pull_x(s)
    return h


class SDLM(torch.optim.Optimizer):
    """ε_k = lr / (mu + h_kk), h re-estimated by :meth:`before_epoch`, one update per call.

    ``hessian``: how h_kk is estimated. ``"paper"``: the paper's squared-weight back-propagation
    (:func:`paper_diagonal`; the model must be a :class:`CurvatureModel`); ``"gauss-newton"``: the
    exact Gauss-Newton diagonal (:func:`gauss_newton_diagonal`); ``"auto"`` (default): the
    paper's where the model supports it (``lenet5-1998``), Gauss-Newton otherwise.
    ``probes``: random-sign probes per pattern for the Gauss-Newton estimate (None: exact, M
    products per pattern; 4 by default, 4 products per pattern instead of M, 84 for
    lenet5-1998). ``threads``: intra-op threads while estimating (None: leave as is).

    It implements :class:`lenet.training.optim.EpochHook`: the trainer calls :meth:`before_epoch`
    before every pass.

    ``step`` is a single fused ``_foreach_addcmul_`` with the step sizes cached per learning
    rate, so per-pattern training pays almost nothing for the optimizer.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 5e-4,
                 mu: float = MU, rbf_j: float = 1.0, probes: int | None = 4, chunk: int = 64,
                 seed: int = 0, threads: int | None = 1, hessian: str = "auto") -> None:
        if lr <= 0 or mu <= 0:
            raise ValueError(f"SDLM needs lr > 0 and mu > 0, got lr={lr}, mu={mu}")
        if hessian not in HESSIANS:
            raise ValueError(f"SDLM: hessian must be one of {', '.join(HESSIANS)}, got {hessian!r}")
        super().__init__(params, {"lr": lr, "mu": mu})
        self.rbf_j = rbf_j
        self.hessian = hessian
        self.probes = probes
        self.threads = threads
        self.chunk = chunk
        self._generator = torch.Generator().manual_seed(seed)
        self._version = 0
        self._cache: dict[int, tuple[tuple[float, float, int], list[torch.Tensor]]] = {}

    @torch.no_grad()
    def before_epoch(self, model: nn.Module, sample: tuple[torch.Tensor, torch.Tensor],
                     loss: str | Callable = "cross-entropy") -> None:
        """Re-estimate h_kk on ``sample = (inputs, targets)`` (the paper: 500 patterns)."""
        inputs, targets = sample
        # One intra-op thread by default: the estimate is many small per-pattern products, and
        # on a shared CPU a second thread mostly waits, which made it slower than one.
        with torch.enable_grad(), threads(self.threads):
            if self.estimator(model) == "paper":
                h = paper_diagonal(model, inputs, targets, loss, rbf_j=self.rbf_j)
            else:
                h = gauss_newton_diagonal(model, inputs, targets, loss, rbf_j=self.rbf_j,
                                          probes=self.probes, chunk=self.chunk,
                                          generator=self._generator)
        by_id = {id(p): n for n, p in model.named_parameters()}
        for group in self.param_groups:
            for p in group["params"]:
                name = by_id.get(id(p))
                if name is None or name not in h:
                    raise ValueError("SDLM.before_epoch: the optimizer holds a parameter that is "
                                     "not a trainable parameter of this model")
                self.state[p]["h"] = h[name]
        self._version += 1

    def estimator(self, model: nn.Module) -> str:
        """The curvature estimate used for this model: "paper" or "gauss-newton"."""
        if self.hessian == "auto":
            return "paper" if isinstance(model, CurvatureModel) else "gauss-newton"
        return self.hessian

    def step_sizes(self, group: dict) -> list[torch.Tensor]:
        """-ε_k for every parameter of the group, recomputed only when lr, mu or h change."""
        key = (group["lr"], group["mu"], self._version)
        gid = id(group)
        cached = self._cache.get(gid)
        if cached is None or cached[0] != key:
            steps = []
            for p in group["params"]:
                h = self.state[p].get("h")
                if h is None:
                    raise RuntimeError("SDLM: call before_epoch(model, (inputs, targets), loss) "
                                       "to estimate the curvature before the first step")
                steps.append(-group["lr"] / (group["mu"] + h))
            cached = (key, steps)
            self._cache[gid] = cached
        return cached[1]

    # torch.optim.Optimizer's own signature: no closure, no loss; a closure, its loss.
    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            steps = self.step_sizes(group)
            params, grads, eps = [], [], []
            for p, s in zip(group["params"], steps, strict=True):
                if p.grad is not None:
                    params.append(p)
                    grads.append(p.grad)
                    eps.append(s)
            if params:
                torch._foreach_addcmul_(params, grads, eps)
        return loss
