"""Deslanting: shear each digit horizontally so that its principal axis is vertical.

The 1998 paper (Section III-C, the "deslanted" rows of Fig. 9) computes the second moments of
inertia of the pixels and shears the image by shifting its lines horizontally until the
principal axis is vertical. With the ink's centroid (cx, cy) and its central moments

    mu11 = E[(x - cx)(y - cy)],   mu02 = E[(y - cy)^2]   (weighted by pixel intensity),

the slant is s = mu11 / mu02, and the shear x' = x - s (y - cy) leaves the centroid where it
was and makes the new mu11 = mu11 - s mu02 = 0. The paper counts a foreground pixel as 1 and a
background pixel as 0; here the grey levels are the weights (our choice: no threshold to pick,
and antialiased strokes count in proportion to their ink). The result is resampled bilinearly
(``grid_sample``, zero = background outside the field). A blank image has no slant and stays
blank; |s| is capped at :data:`MAX_SLANT` (our choice, about 63 degrees, far beyond any real
digit's slant) so a degenerate one-row image cannot shear its ink out of the field.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SLANT = 2.0  # |mu11 / mu02| cap: tan(63 degrees)


def moments(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(N, H, W) non-negative images -> per image (mass, cx, cy, mu11, mu02, mu20).

    Coordinates are pixel indices (column x, row y); the central moments are normalised by the
    mass, so they are in pixels squared. A blank image gets zeros (no NaN).
    """
    _, h, w = images.shape
    x = torch.arange(w, dtype=images.dtype, device=images.device)
    y = torch.arange(h, dtype=images.dtype, device=images.device)
    mass = images.sum((1, 2))
    safe = mass.clamp_min(torch.finfo(images.dtype).tiny)
    col, row = images.sum(1), images.sum(2)  # (N, W) ink per column, (N, H) ink per row
    cx = (col * x).sum(1) / safe
    cy = (row * y).sum(1) / safe
    dx = x[None, :] - cx[:, None]  # (N, W)
    dy = y[None, :] - cy[:, None]  # (N, H)
    mu20 = (col * dx * dx).sum(1) / safe
    mu02 = (row * dy * dy).sum(1) / safe
    mu11 = torch.einsum("nhw,nh,nw->n", images, dy, dx) / safe
    return mass, cx, cy, mu11, mu02, mu20


def slant(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N,) the shear s = mu11 / mu02 that deslanting removes (0 for blanks)."""
    _, _, _, mu11, mu02, _ = moments(images)
    ok = mu02 > 1e-6
    s = torch.where(ok, mu11 / torch.where(ok, mu02, torch.ones_like(mu02)),
                    torch.zeros_like(mu02))
    return s.clamp(-MAX_SLANT, MAX_SLANT)


def deslant(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) float digits -> the same digits sheared upright, on the same device and dtype.

    Each output pixel (x, y) reads the input at (x + s (y - cy), y): the inverse of the shear
    x' = x - s (y - cy). Any value range works (the moments are normalised by the mass).
    """
    if images.dim() != 3:
        raise ValueError(f"deslant wants (N, H, W) images, got shape {tuple(images.shape)}")
    n, h, w = images.shape
    x = images if images.is_floating_point() else images.float()
    s = slant(x)
    _, _, cy, _, _, _ = moments(x)
    # Normalised coordinates (align_corners=False): pixel i sits at (2 i + 1) / W - 1, so a
    # shift of d pixels is 2 d / W in x.
    cols = (2 * torch.arange(w, dtype=x.dtype, device=x.device) + 1) / w - 1
    rows = (2 * torch.arange(h, dtype=x.dtype, device=x.device) + 1) / h - 1
    ypix = torch.arange(h, dtype=x.dtype, device=x.device)
    shift = s[:, None] * (ypix[None, :] - cy[:, None]) * (2.0 / w)  # (N, H)
    gx = cols[None, None, :] + shift[:, :, None]  # (N, H, W)
    gy = rows[None, :, None].expand(n, h, w)
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[:, 0]


class Deslant:
    """Torchvision-style transform: one (H, W) or (1, H, W) digit, or an (N, H, W) batch."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 2:
            return deslant(images[None])[0]
        if images.dim() == 3 and images.shape[0] == 1:
            return deslant(images)  # (1, H, W): one digit with its channel, same shape back
        if images.dim() == 4 and images.shape[1] == 1:
            return deslant(images[:, 0])[:, None]
        return deslant(images)

    def __repr__(self) -> str:
        return "Deslant()"
