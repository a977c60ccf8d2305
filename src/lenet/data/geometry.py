"""What can be done to a 28x28 digit's picture, in one place: an affine warp about the centre,
a thicker or thinner stroke, and noise.

Training's random distortions (:mod:`lenet.data.distort`), the robustness curves
(:mod:`lenet.analysis.robustness`) and the web page's sliders
(:mod:`lenet.inference.serve.digits`, and its port to the browser in ``serve/static/mnist.js``)
are all made of these. Digits are (B, H, W) tensors of grey levels 0..255, white ink on black,
uint8 or float; every function returns a new float32 tensor and leaves its input as it was.

The one convention for geometry: a forward map ``p' = A p + t`` (a (2, 3) matrix ``[A | t]``,
or a batch of them) in pixels, about the image centre (pixel index 13.5 in a 28 px field), with
y pointing down. It is sampled with bilinear ``grid_sample`` and zero (the background) outside
the field, in ``align_corners=False`` coordinates (pixel i's centre at ``(2 i + 1) / W - 1``),
the convention training has always used. (``align_corners=True`` describes the same pixel map
in other numbers: the two differ only by float rounding.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Number = float | torch.Tensor


# --------------------------------------------------------------------------- affine warp
def affine_map(*, scale: Number = 1.0, squeeze: Number = 1.0, shear: Number = 0.0,
               rotate: float = 0.0, shift_x: Number = 0.0, shift_y: Number = 0.0
               ) -> torch.Tensor:
    """The forward map ``p' = R(rotate) @ [[1, shear], [0, 1]] @ diag(s q, s / q) @ p + t``:
    a (2, 3) matrix, or (n, 2, 3) when any argument is an (n,) tensor.

    `scale` s sizes both axes, `squeeze` q widens (q > 1) while it flattens, `shear` k is
    ``x' = x + k y`` (the bottom moves right for k > 0), `rotate` is in degrees
    counter-clockwise on screen, and the shift ``t = (shift_x, shift_y)`` is in pixels, right
    and down. Computed in the tensors' dtype (float64 for plain numbers)."""
    given = [v for v in (scale, squeeze, shear, shift_x, shift_y) if isinstance(v, torch.Tensor)]
    dtype = given[0].dtype if given else torch.float64
    device = given[0].device if given else None
    s, q, k, tx, ty = torch.broadcast_tensors(*(
        v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=dtype, device=device)
        for v in (scale, squeeze, shear, shift_x, shift_y)))
    # diag(s q, s / q), then the shear x += k y: [[a, b], [0, d]].
    a, b, d = s * q, k * s / q, s / q
    if rotate == 0:  # kept out of the products, so that no rounding creeps in
        rows = ((a, b, tx), (torch.zeros_like(a), d, ty))
    else:
        r = math.radians(rotate)
        c, n = math.cos(r), math.sin(r)
        # [[c, n], [-n, c]]: with y down, (1, 0) goes to (cos, -sin), up the screen.
        rows = ((c * a, c * b + n * d, tx), (-n * a, -n * b + c * d, ty))
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def warp(images: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """uint8 or float (B, H, W) digits under forward maps ``p' = A p + t`` (a (2, 3) matrix, or
    (B, 2, 3), in pixels about the image centre, y downwards) -> float (B, H, W) in 0..255:
    bilinear, zero outside the field."""
    n, h, w = images.shape
    device = images.device
    forward = forward.to(device=device, dtype=torch.float32).expand(n, 2, 3)
    inv = torch.linalg.inv(forward[:, :, :2])
    # grid_sample reads, for each output pixel, the input at the inverse map, in coordinates
    # normalized to [-1, 1] (align_corners=False): p = D p_norm with D = diag(w/2, h/2), so the
    # linear part is D^-1 inv D (inv itself, exactly, in a square field) and the shift D^-1 t.
    half = torch.tensor([w / 2, h / 2], device=device)
    # Skipped for the square digit field, where it is a product by ones: this runs for every
    # distorted training batch, down to batch 1.
    lin = inv if h == w else inv * (half[None, None, :] / half[None, :, None])
    t_norm = forward[:, :, 2] / half
    theta = torch.cat([lin, -(lin @ t_norm[:, :, None])], dim=2)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    out = F.grid_sample(images[:, None].float(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[:, 0].clamp_(0.0, 255.0)


# --------------------------------------------------------------------------- stroke width
def _dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def stroke(images: torch.Tensor, width: float) -> torch.Tensor:
    """Dilate (`width` > 0) or erode (< 0) the ink by |width| pixels on each side.

    A whole pixel is one 3x3 grey-level max-pool (dilation) or min-pool (erosion; borders add
    nothing); a fraction f of the next pixel is the blend ``(1 - f) a + f b`` of the two whole
    steps around it (MNIST's anti-aliased edges make that a sub-pixel move of the edge).
    """
    sign = 1.0 if width > 0 else -1.0  # erosion is the dilation of the negated image
    x = images.to(torch.float32, copy=True)[:, None].mul_(sign)
    whole = math.floor(abs(width))
    for _ in range(whole):
        x = _dilate(x)
    if fraction := abs(width) - whole:
        x = torch.lerp(x, _dilate(x), fraction)
    return x[:, 0].mul_(sign)


# --------------------------------------------------------------------------- noise
def gaussian(images: torch.Tensor, sigma: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation `sigma` grey levels, clipped to 0..255;
    drawn from `generator` (on the images' device), so a seed gives the same noise again."""
    x = images.to(torch.float32, copy=True)
    if sigma == 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return x.add_(noise, alpha=sigma).clamp_(0.0, 255.0)


def salt_pepper(images: torch.Tensor, fraction: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """That `fraction` of the pixels, drawn at random, set to 255 (half of them) or 0."""
    x = images.to(torch.float32, copy=True)
    if fraction == 0:
        return x
    # One uniform draw per pixel decides both: below fraction/2 salt, up to fraction pepper.
    u = torch.rand(x.shape, generator=generator, device=x.device)
    return x.masked_fill_(u < fraction, 0.0).masked_fill_(u < fraction / 2, 255.0)
