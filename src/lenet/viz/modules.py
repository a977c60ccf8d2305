"""Find the layers worth drawing in any registered model, without knowing its class."""

from __future__ import annotations

import torch
from torch import nn

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def conv_weight(module: nn.Module) -> torch.Tensor:
    """A convolution's dense (out, in, kh, kw) weight; a sparse convolution (the 1998 C3,
    ``dense_weight()``) has zeros where its connection table has no link."""
    dense = getattr(module, "dense_weight", None)
    if callable(dense):
        return dense().detach()
    return module.weight.detach()


def conv_mask(module: nn.Module) -> torch.Tensor | None:
    """The (out, in) 0/1 connection table of a sparse convolution, or None."""
    mask = getattr(module, "mask", None)
    if callable(mask):
        mask = mask()
    return mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolutions in definition order (forward order for lenet's models): modules owning a
    4-D ``weight`` (nn.Conv2d and the like) or a ``dense_weight()`` method (a sparse
    convolution such as the 1998 network's C3). Read their kernels with :func:`conv_weight`."""
    out = []
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if callable(getattr(m, "dense_weight", None)) or (
                isinstance(w, torch.Tensor) and w.dim() == 4):
            out.append((name, m))
    return out


def spatial_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolutions and subsampling layers, outermost first: a custom layer (one with a 4-D
    weight or a ``connections`` method) is taken whole, not by its parts."""
    taken: list[str] = []
    out = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        w = getattr(m, "weight", None)
        is_conv = callable(getattr(m, "dense_weight", None)) or (
            isinstance(w, torch.Tensor) and w.dim() == 4)
        is_sub = isinstance(m, _POOLS) or (hasattr(m, "connections") and not is_conv
                                           and not isinstance(m, nn.Linear))
        if is_conv or is_sub:
            out.append((name, m))
            taken.append(name)
    return out


@torch.inference_mode()
def activations(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Outputs of every spatial layer for one input batch of size 1: (name, (C, H, W))."""
    layers = spatial_layers(model)
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, m in layers:
        def hook(_m, _inp, out, name=name):
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                seen.append((name, out[0].detach().float().cpu()))
        hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


_RBF_NAMES = ("rbf_bitmaps", "bitmaps", "prototypes", "centers", "centres", "codes")


def rbf_bitmaps(model: nn.Module, num_classes: int = 10) -> torch.Tensor | None:
    """The output RBF units' parameter vectors as (classes, 12, 7) images, or None.

    Looked up, in order: a ``rbf_bitmaps`` attribute of the model (tensor or method); then any
    parameter or buffer whose name ends in one of bitmaps/prototypes/centers/codes (or any
    tensor under a submodule whose name contains "rbf") of shape (classes, 84) or
    (classes, 12, 7). 84 = 7x12 as in the 1998 paper's Fig. 3 stylized digits.
    """
    attr = getattr(model, "rbf_bitmaps", None)
    if callable(attr) and not isinstance(attr, torch.Tensor):
        attr = attr()
    candidates: list[torch.Tensor] = []
    if isinstance(attr, torch.Tensor):
        candidates.append(attr)
    for name, t in [*model.named_buffers(), *model.named_parameters()]:
        leaf = name.rsplit(".", 1)[-1].lower()
        if leaf in _RBF_NAMES or "rbf" in name.lower():
            candidates.append(t)
    for t in candidates:
        t = t.detach().float().cpu()
        if t.shape[0] != num_classes:
            continue
        if t.dim() == 2 and t.shape[1] == 84:
            return t.reshape(num_classes, 12, 7)
        if t.dim() == 3:
            return t
    return None
