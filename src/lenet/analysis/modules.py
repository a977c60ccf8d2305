"""Find the layers worth drawing in any registered model, without knowing its class.

A plain PyTorch layer is recognized by its type; anything else is asked for
through the protocols of :mod:`lenet.models.interfaces` (a sparse convolution's kernels, a
layer's own connection count, a model's RBF codes), never by guessing attribute names.
"""

from __future__ import annotations

import torch
from torch import nn

from lenet.models import eval_mode
from lenet.models.interfaces import CountsConnections, RBFOutput, SparseConvolution

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def conv_weight(module: nn.Module) -> torch.Tensor:
    """A convolution's dense (out, in, kh, kw) weight; a sparse convolution (the 1998 C3) has
    zeros where its connection table has no link."""
    if isinstance(module, SparseConvolution):
        return module.dense_weight().detach()
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} is not a convolution: its weight is no tensor")
    return weight.detach()


def conv_mask(module: nn.Module) -> torch.Tensor | None:
    """The (out, in) 0/1 connection table of a sparse convolution, or None."""
    return module.mask() if isinstance(module, SparseConvolution) else None


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, SparseConvolution))


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolutions in definition order (forward order for lenet's models): nn.Conv2d and
    sparse convolutions (the 1998 network's C3). Read their kernels with :func:`conv_weight`."""
    return [(name, m) for name, m in model.named_modules() if _is_conv(m)]


def spatial_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolutions and subsampling layers, outermost first: a custom layer (a convolution or
    one that counts its own connections) is taken whole, not by its parts."""
    taken: list[str] = []
    out = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        is_conv = _is_conv(m)
        is_sub = isinstance(m, _POOLS) or (isinstance(m, CountsConnections) and not is_conv
                                           and not isinstance(m, nn.Linear))
        if is_conv or is_sub:
            out.append((name, m))
            taken.append(name)
    return out


@torch.inference_mode()
def activations(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Outputs of every spatial layer for one input batch of size 1: (name, (C, H, W))."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, m in spatial_layers(model):
        def hook(_m: nn.Module, _inp: object, out: object, name: str = name) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                seen.append((name, out[0].detach().float().cpu()))
        hooks.append(m.register_forward_hook(hook))
    try:
        with eval_mode(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def rbf_bitmaps(model: nn.Module) -> torch.Tensor | None:
    """The output RBF units' codes as (classes, height, width) images (the 1998 paper's 7x12
    stylized digits of Fig. 3), or None for a model without an RBF output."""
    if not isinstance(model, RBFOutput):
        return None
    return model.rbf_bitmaps().detach().float().cpu()
