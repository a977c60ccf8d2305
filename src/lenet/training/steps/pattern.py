"""One SDLM training step of ``lenet5-1998`` with its gradients written out by hand.

The paper trains with one update per pattern: 1.2 million steps for its 20 passes, each a batch
of one 32x32 digit. At that size PyTorch's autograd engine, not arithmetic, is the cost: every
step records and walks a graph of dozens of nodes for a few small tensor ops. This module
computes the same forward pass, the same gradients of the paper's losses (Eq. 8 and Eq. 9) and
the same SDLM update (w_k <- w_k - ε_k ∂E/∂w_k, ε_k from :class:`~lenet.training.optim.sdlm.SDLM`)
as a
straight sequence of ATen ops with no graph, so a step costs little more than its kernels. The
gradients are the chain rule through the network of :mod:`lenet.models.lenet1998`, layer by
layer, top down:

- RBF + loss: with scores -y_i and c_i = ∂E/∂y_i (Eq. 9: [i = D] - softmax(-j, -y)_i; Eq. 8:
  [i = D]), ∂E/∂x_j = 2 Σ_i c_i (x_j - w_ij);
- squashing f(a) = A tanh(S a): f'(a) = A S (1 - tanh²(S a));
- F6 and C5 (C5 is 1x1 on a 32x32 input: a 400 -> 120 matrix product): ∂W = gᵀ x, ∂x = g W;
- subsampling a = b + c · (sum of the 2x2 block): ∂b = Σ g, ∂c = Σ g · block sum, and each of
  the four inputs gets g · c;
- C3 and C1: ``aten.convolution_backward`` on the dense (zero-filled) C3 kernel, whose gradient
  is then read back at Table I's connections only.

:func:`supports` says when the trainer may use it (the exact :class:`LeNet1998` class, SDLM, an
RBF loss, float32, no DDP wrapper); tests check its gradients and updates against autograd.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, overload

import torch
import torch.nn.functional as F
from torch import nn

from lenet.models.lenet1998 import SQUASH_A, SQUASH_S, LeNet1998
from lenet.training.optim.sdlm import SDLM

LOSSES = ("rbf-map", "rbf-mle")


def supports(model: nn.Module, optimizer: torch.optim.Optimizer, loss: str
             ) -> TypeGuard[LeNet1998]:
    """Whether :class:`PatternStep` computes exactly what autograd would for this setup (and so,
    to the type checker, that ``model`` is a :class:`LeNet1998`)."""
    return (type(model) is LeNet1998 and isinstance(optimizer, SDLM) and loss in LOSSES
            and len(optimizer.param_groups) == 1
            and all(p.dtype == torch.float32 for p in model.parameters()))


def _squash(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(a) = A tanh(S a) and tanh(S a), from which the backward pass gets
    f'(a) = A S (1 - tanh²(S a)) (:func:`_squash_back`)."""
    t = torch.tanh(a.mul_(SQUASH_S))
    return t * SQUASH_A, t


def _squash_back(grad: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∂E/∂a from ∂E/∂f(a) and t = tanh(S a)."""
    return torch.ops.aten.tanh_backward(grad, t).mul_(SQUASH_A * SQUASH_S)


def _block_sums(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2).mul_(4.0)


def _spread(g: torch.Tensor) -> torch.Tensor:
    """Each 2x2 block's gradient copied to its four inputs: (B, C, H, W) -> (B, C, 2H, 2W)."""
    b, c, h, w = g.shape
    return g[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


@overload
def _conv_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                   need_input: Literal[True]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ...


@overload
def _conv_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                   need_input: Literal[False]) -> tuple[None, torch.Tensor, torch.Tensor]:
    ...


def _conv_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_input: bool
                   ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """∂E/∂x (None unless ``need_input``: ATen skips it), ∂E/∂weight and ∂E/∂bias of a
    stride-1 unpadded convolution from ∂E/∂output."""
    return torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
        [need_input, True, True])


class PatternStep:
    """``step(x, y) -> (loss, scores)``: forward, hand-written backward and the SDLM update.

    Drop-in for the trainer's autograd step (same return values, same update), for a
    :class:`LeNet1998` trained by :class:`SDLM` on ``rbf-map`` (Eq. 9) or ``rbf-mle`` (Eq. 8).
    Parameter gradients are not stored in ``.grad``: they are used and dropped.
    """

    def __init__(self, model: LeNet1998, optimizer: SDLM, loss: str, rbf_j: float = 1.0) -> None:
        if not supports(model, optimizer, loss):
            raise ValueError("PatternStep needs a LeNet1998 model, one SDLM param group and an "
                             f"RBF loss ({' or '.join(LOSSES)}), got loss {loss!r}")
        self.model, self.optimizer, self.loss, self.rbf_j = model, optimizer, loss, rbf_j
        group = optimizer.param_groups[0]
        names = {id(p): n for n, p in model.named_parameters()}
        self.names = [names[id(p)] for p in group["params"]]
        if sorted(self.names) != sorted(n for n, p in model.named_parameters()
                                        if p.requires_grad):
            raise ValueError("PatternStep: the optimizer must hold every trainable parameter "
                             "of the model")

    def gradients(self, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss over the batch, scores (-y_i), and ∂loss/∂w per parameter name."""
        m = self.model
        with torch.no_grad():
            n = x.shape[0]
            # Forward, keeping what the backward pass needs.
            x1, d1 = _squash(F.conv2d(x, m.c1.weight, m.c1.bias))
            p1 = _block_sums(x1)
            x2, d2 = _squash(torch.addcmul(m.s2.bias[:, None, None], p1,
                                           m.s2.coefficient[:, None, None]))
            w3 = m.c3.dense_weight()
            x3, d3 = _squash(F.conv2d(x2, w3, m.c3.bias))
            p3 = _block_sums(x3)
            x4, d4 = _squash(torch.addcmul(m.s4.bias[:, None, None], p3,
                                           m.s4.coefficient[:, None, None]))
            x4f = x4.reshape(n, -1)
            w5 = m.c5.weight.view(m.c5.weight.shape[0], -1)
            assert m.c5.bias is not None  # paper_conv always makes one
            x5, d5 = _squash(torch.addmm(m.c5.bias, x4f, w5.t()))
            x6, d6 = _squash(torch.addmm(m.f6.bias, x5, m.f6.weight.t()))
            codes = m.output.codes
            dist = (x6[:, None, :] - codes).square_().sum(-1)  # y_i, (B, 10)
            scores = dist.neg()
            target = F.one_hot(y, dist.shape[1]).to(dist.dtype)
            if self.loss == "rbf-map":
                # y_D + log(e^-j + Σ e^-y_i) = -log p_D, p the softmax over (-j, -y_0..-y_9).
                logits = torch.cat([scores.new_full((n, 1), -self.rbf_j), scores], dim=1)
                log_p = torch.log_softmax(logits, dim=1)[:, 1:]
                loss = (log_p * target).sum(1).mean().neg()
                coef = target - log_p.exp()
            else:
                loss = (dist * target).sum(1).mean()
                coef = target
            coef = coef.div_(n)  # ∂E/∂y_i for the batch mean

            # Backward, top down.
            g = _squash_back((x6 * coef.sum(1, keepdim=True) - coef @ codes).mul_(2.0), d6)
            grads = {"f6.weight": g.t() @ x5, "f6.bias": g.sum(0)}
            g = _squash_back(g @ m.f6.weight, d5)  # ∂E/∂a5
            grads["c5.weight"] = (g.t() @ x4f).view_as(m.c5.weight)
            grads["c5.bias"] = g.sum(0)
            g = _squash_back((g @ w5).view_as(x4), d4)  # ∂E/∂a4
            grads["s4.bias"] = g.sum((0, 2, 3))
            grads["s4.coefficient"] = (g * p3).sum((0, 2, 3))
            g = _squash_back(_spread(g * m.s4.coefficient[:, None, None]), d3)  # ∂E/∂a3
            gx2, gw3, gb3 = _conv_backward(g, x2, w3, need_input=True)
            grads["c3.weight"] = gw3[m.c3._out_idx, m.c3._in_idx]
            grads["c3.bias"] = gb3
            g = _squash_back(gx2, d2)  # ∂E/∂a2
            grads["s2.bias"] = g.sum((0, 2, 3))
            grads["s2.coefficient"] = (g * p1).sum((0, 2, 3))
            g = _squash_back(_spread(g * m.s2.coefficient[:, None, None]), d1)  # ∂E/∂a1
            _, gw1, gb1 = _conv_backward(g, x, m.c1.weight, need_input=False)
            grads["c1.weight"], grads["c1.bias"] = gw1, gb1
        return loss, scores, grads

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, scores, grads = self.gradients(x, y)
        group = self.optimizer.param_groups[0]
        with torch.no_grad():
            torch._foreach_addcmul_(group["params"], [grads[n] for n in self.names],
                                    self.optimizer.step_sizes(group))
        return loss, scores
