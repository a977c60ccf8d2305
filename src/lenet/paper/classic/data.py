"""The digits as the classical rows see them: float vectors in [0, 1], optionally deslanted,
cut to the digit's box (20x20 for the 300-10 net) and resampled to a smaller square (16x16
for tangent distance)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lenet import data
from lenet.data.deslant import deslant as deslant_digits
from lenet.paper.classic.base import Context

INK = 0.05  # a pixel above this grey level counts as ink when finding the digit's box


def digits(ctx: Context, split: str, *, deslant: bool = False, size: int = 28,
           crop: int | None = None, subset: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, size*size) float32 in [0, 1] and (N,) int64 labels of MNIST's ``split``.

    ``subset`` (or, when None, ctx.train_subset / ctx.test_subset for that split) keeps the
    first N digits, as ``lenet train --train-subset`` does. The order of the steps: deslant,
    then ``crop`` (a crop x crop window about the digit's box, see :func:`box_crop`), then
    resample to ``size`` (when it differs from the side at that point).
    """
    images, labels = data.load("mnist", split, ctx.data_dir)
    n = subset if subset is not None else (
        ctx.train_subset if split == "train" else ctx.test_subset)
    if n is not None:
        images, labels = images[:n], labels[:n]
    x = images.to(ctx.device).to(torch.float32).div_(255.0)
    if deslant:
        x = deslant_digits(x)
    if crop is not None:
        x = box_crop(x, crop)
    if size != x.shape[-1]:
        x = resample(x, size)
    return x.reshape(len(x), -1), labels.to(ctx.device)


def resample(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 28, 28) -> (N, size, size) by area averaging (antialiased: no aliasing of strokes)."""
    return F.interpolate(images.unsqueeze(1), size=(size, size), mode="area").squeeze(1)


def box_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) -> (N, size, size): the window centred on each digit's ink box.

    MNIST's digits were size-normalised into a 20x20 box and then placed in the 28x28 field by
    their centre of mass, so the box is rarely the field's centre: a fixed centre crop would
    cut about 3 % of the ink (up to 16 % of one digit); centring on the box (whole pixels, kept
    inside the field) loses under 0.1 % on average. A blank image gets the field's centre.
    """
    n, h, w = images.shape
    ink = images > INK

    def start(mask: torch.Tensor, side: int) -> torch.Tensor:  # (N, side) -> (N,) first index
        idx = torch.arange(side, device=images.device)
        lo = torch.where(mask, idx, side).min(1).values
        hi = torch.where(mask, idx, -1).max(1).values
        centre = torch.where(hi >= lo, lo + hi + 1, torch.full_like(lo, side)) // 2
        return (centre - size // 2).clamp(0, side - size)

    top, left = start(ink.any(2), h), start(ink.any(1), w)
    i = torch.arange(size, device=images.device)
    rows = (top[:, None] + i)[:, :, None]
    cols = (left[:, None] + i)[:, None, :]
    return images[torch.arange(n, device=images.device)[:, None, None], rows, cols]
