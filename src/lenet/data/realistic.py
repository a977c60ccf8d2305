"""Random distortions that make an MNIST training digit look like what lenet's preprocessing
makes of a person's photo or scan: generated on the device, per batch, seeded.

MNIST's digits are clean: thin, evenly inked, on a black field with nothing else in it. A photo
of a digit written with a marker or a ballpoint, on paper, under uneven light, saved as a JPEG,
and then put through :mod:`lenet.inference.preprocess` (inverted, contrast stretched, faint
noise zeroed, cropped to the ink, scaled so that its longest side is 20 px, centred by mass) is
not: its strokes are thicker or thinner, blurred, unevenly dark, and whatever of the paper
survives the stretch is still there. :class:`Realistic` draws, for every training digit, a
random combination of what a real hand, pen, paper and camera do to it, in that order:

1. the hand (Simard, Steinkraus and Platt 2003; the 1998 paper's Sec. III-C): an *elastic*
   distortion, a random displacement field smoothed by a Gaussian of ``elastic_sigma`` px and
   scaled by up to ``elastic_alpha`` px, then a planar *affine* one (translation, scaling,
   squeezing, horizontal shear: :class:`lenet.data.distort.Distortion`'s, with its ranges
   here), which also moves the digit off centre and resizes it, as a crop that caught a
   little of the paper does;
2. the pen: the stroke made thicker (a marker) or thinner (a fine pen) by up to
   ``stroke`` px on each side (:func:`lenet.data.geometry.stroke`), the digit then scaled back
   to the 20 px that preprocessing gives any digit;
3. the camera and the paper: a Gaussian *blur* (focus, motion, the scan's low resolution), a
   *low resolution* (the digit taken down to 10-18 px and back up), uneven *ink* (a smooth
   field darkening parts of the stroke) and a *gamma* (the ink's grey ramp), *paper* residue
   (a smooth background of uneven light and texture that the stretch left), a *ruled line*
   remnant, sensor *noise*, and *JPEG* 8x8 blocking (the blocks' DCT coefficients quantized
   with the standard luminance table at a random quality);
4. lenet's preprocessing again: the strongest ink back to 255 and faint residue (under
   :data:`~lenet.inference.preprocess.NOISE_FLOOR` of it) back to 0, as any input gets.

Each step has its own probability; a digit is left as it is with probability ``p_original``.
The ranges keep a digit a readable digit of its class. Everything is drawn from the generator
given (on the images' device), so a seed gives the same batch again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lenet.data.distort import Distortion
from lenet.data.geometry import stroke, warp

BOX = 20.0  # the longest side preprocessing gives a digit (lenet.inference.preprocess.BOX)
NOISE_FLOOR = 0.08 * 255.0  # what preprocessing zeroes as paper texture (its NOISE_FLOOR)
# JPEG's standard luminance quantization table (ITU T.81, Annex K.1), row-major.
_JPEG_Q = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
           14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
           18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_DRAWS = 16  # uniform numbers drawn per digit (see Realistic.__call__)
# The hand's planar part: the paper's kinds of affine distortion, a little milder in the shift
# (preprocessing centres a digit by its mass), applied to every digit that is distorted.
AFFINE = Distortion(translate=1.5, scale=0.1, squeeze=0.1, shear=0.3, p_original=0.0)


@dataclass(frozen=True)
class Realistic:
    """Per-digit random distortions for real input (see the module's docstring); call it on
    uint8 or float (B, 28, 28) digits, white ink on black, with a ``torch.Generator``.

    >>> digits = torch.zeros(4, 28, 28, dtype=torch.uint8); digits[:, 6:22, 12:16] = 255
    >>> out = Realistic()(digits, torch.Generator().manual_seed(0))
    >>> out.shape, out.dtype, float(out.max())
    (torch.Size([4, 28, 28]), torch.float32, 255.0)
    """

    p_original: float = 0.1  # probability that a digit is left exactly as it is
    p_elastic: float = 0.5
    elastic_alpha: float = 34.0  # px: Simard et al.'s alpha for MNIST (the field's scale)
    elastic_sigma: float = 4.0  # px: Simard et al.'s sigma (the field's smoothness)
    affine: Distortion = AFFINE
    p_stroke: float = 0.7
    stroke: tuple[float, float] = (-0.5, 2.0)  # px on each side: thinner .. thicker
    p_blur: float = 0.4
    blur: float = 1.0  # px: the largest Gaussian sigma
    p_lowres: float = 0.3
    p_ink: float = 0.4
    ink: float = 0.5  # the most a part of the stroke is lightened (a fraction of the peak)
    gamma: float = 0.6  # gamma drawn in [exp(-gamma), exp(gamma)]
    p_paper: float = 0.3
    paper: float = 70.0  # grey levels: the most residue a smooth background leaves
    p_line: float = 0.15
    line: tuple[float, float] = (24.0, 72.0)  # ruled lines' remnant grey level
    p_noise: float = 0.3
    noise: float = 16.0  # grey levels: the largest noise standard deviation
    p_jpeg: float = 0.15
    jpeg: tuple[float, float] = (25.0, 90.0)  # JPEG quality

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """uint8 or float (B, 28, 28) digits -> float32 (B, 28, 28) distorted digits in
        [0, 255], each peaking at 255 (a blank digit stays blank)."""
        x = images.to(torch.float32, copy=True)
        n, device = len(x), x.device
        if n == 0:
            return x
        u = torch.rand(n, _DRAWS, generator=generator, device=device)
        on = u[:, :10] < torch.tensor(
            [self.p_elastic, self.p_stroke, self.p_blur, self.p_lowres, self.p_ink,
             self.p_paper, self.p_line, self.p_noise, self.p_jpeg, self.p_original],
            device=device)
        keep = on[:, 9] | (x.flatten(1).amax(1) == 0)  # a blank stays blank, never noise
        x = self._hand(x, on, u, generator)
        x = self._camera(x, on, u, generator)
        # Preprocessing's last word: the strongest ink is 255, faint residue is background.
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = torch.where(peak > 0, x * (255.0 / peak.clamp_min(1e-6)), x)
        x = x.masked_fill_(x < NOISE_FLOOR, 0.0).clamp_(0.0, 255.0)
        return torch.where(keep[:, None, None], images.to(torch.float32), x)

    def _hand(self, x: torch.Tensor, on: torch.Tensor, u: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
        """Elastic, then pen width, then the affine map (scaled back to the 20 px box)."""
        if bool(on[:, 0].any()):
            i = on[:, 0].nonzero()[:, 0]
            x[i] = elastic(x[i], self.elastic_alpha * u[i, 10], self.elastic_sigma, generator)
        width = torch.where(on[:, 1], self.stroke[0] + (self.stroke[1] - self.stroke[0])
                            * u[:, 11], torch.zeros_like(u[:, 11]))
        if bool(on[:, 1].any()):
            i = on[:, 1].nonzero()[:, 0]
            x[i] = pen(x[i], width[i])
        forward = self.affine.matrices(len(x), generator, x.device)
        # A thicker pen makes a larger ink box, which preprocessing scales back to 20 px.
        forward[:, :, :2] *= (BOX / (BOX + 2 * width.clamp_min(0)))[:, None, None]
        return warp(x, forward)

    def _camera(self, x: torch.Tensor, on: torch.Tensor, u: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        n, device = len(x), x.device
        # A blurred photo or a low-resolution scan, not both: together they leave a smudge.
        if bool(on[:, 2].any()):
            i = on[:, 2].nonzero()[:, 0]
            x[i] = blur(x[i], 0.3 + (self.blur - 0.3) * u[i, 12])
        if bool((on[:, 3] & ~on[:, 2]).any()):
            i = (on[:, 3] & ~on[:, 2]).nonzero()[:, 0]
            side = 10 + int(torch.randint(9, (1,), generator=generator, device=device))
            x[i] = lowres(x[i], side)
        if bool(on[:, 4].any()):
            gamma = torch.exp(self.gamma * (2 * u[:, 13] - 1))[:, None, None]
            lighter = 1 - self.ink * on[:, 4, None, None] * smooth_field(n, 3, generator,
                                                                           device)
            ink = (x / 255.0).pow(torch.where(on[:, 4, None, None], gamma, 1.0))
            x = ink * lighter * 255.0
        if bool(on[:, 5].any()):
            level = self.paper * u[:, 14, None, None] * on[:, 5, None, None]
            texture = 0.7 * smooth_field(n, 4, generator, device) + 0.3 * torch.rand(
                x.shape, generator=generator, device=device)
            x = torch.maximum(x, level * texture)  # ink is darker than paper: the brighter wins
        if bool(on[:, 6].any()):
            x = ruled_line(x, on[:, 6], self.line, generator)
        if bool(on[:, 7].any()):
            sigma = self.noise * u[:, 15, None, None] * on[:, 7, None, None]
            x = x + sigma * torch.randn(x.shape, generator=generator, device=device)
        if bool(on[:, 8].any()):
            i = on[:, 8].nonzero()[:, 0]
            q = self.jpeg[0] + (self.jpeg[1] - self.jpeg[0]) * torch.rand(
                len(i), generator=generator, device=device)
            x[i] = jpeg(x[i].clamp(0.0, 255.0), q)
        return x.clamp_(0.0, 255.0)


# --------------------------------------------------------------------------- the hand and pen
def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(n, 2 radius + 1) normalized 1-D Gaussians of standard deviations `sigma` (n,)."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def _separable(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each of the (n, C, H, W) planes of sample i convolved by kernels[i] along both axes,
    zero outside."""
    n, c, h, w = x.shape
    r = kernels.shape[1] // 2
    weight = kernels.repeat_interleave(c, dim=0)[:, None]  # (n c, 1, K)
    planes = x.reshape(1, n * c, h, w)
    planes = F.conv2d(planes, weight[:, :, None, :], padding=(0, r), groups=n * c)
    planes = F.conv2d(planes, weight[:, :, :, None], padding=(r, 0), groups=n * c)
    return planes.reshape(n, c, h, w)


def elastic(x: torch.Tensor, alpha: torch.Tensor, sigma: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Simard et al.'s elastic distortion of (n, H, W) digits: a displacement field uniform in
    [-1, 1] per pixel and axis, smoothed by a Gaussian of `sigma` px and scaled by `alpha` (n,)
    px (alpha 0: the digit as it is), sampled bilinearly, zero outside."""
    n, h, w = x.shape
    field = torch.rand(n * 2, 1, h, w, generator=generator, device=x.device) * 2 - 1
    radius = math.ceil(3 * sigma)
    k = _gaussian_kernels(torch.tensor([sigma], device=x.device), radius)[0]
    # One kernel for every field: a plain (not grouped) convolution, zero outside.
    field = F.conv2d(field, k.reshape(1, 1, 1, -1), padding=(0, radius))
    field = F.conv2d(field, k.reshape(1, 1, -1, 1), padding=(radius, 0))
    field = field.reshape(n, 2, h, w) * alpha[:, None, None, None]
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=x.device).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    # Pixels to grid_sample's [-1, 1] coordinates: 2 / W per pixel.
    grid = grid + field.permute(0, 2, 3, 1) * torch.tensor([2.0 / w, 2.0 / h], device=x.device)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def pen(x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Each digit's stroke made thicker (`width` > 0) or thinner (< 0) by |width| px on each
    side (n,): :func:`~lenet.data.geometry.stroke`'s whole-pixel steps for the batch,
    interpolated per digit."""
    low, high = math.floor(float(width.min())), math.ceil(float(width.max()))
    steps = {0: x}
    for k in range(1, high + 1):  # each whole step one more px on the last one
        steps[k] = stroke(steps[k - 1], 1.0)
    for k in range(-1, low - 1, -1):
        steps[k] = stroke(steps[k + 1], -1.0)
    whole = width.floor().clamp(low, high)
    frac = (width - whole)[:, None, None]
    out = torch.zeros_like(x)
    for k in range(low, high + 1):
        mix = torch.lerp(steps[k], steps.get(k + 1, steps[k]), frac)
        out = torch.where((whole == k)[:, None, None], mix, out)
    return out


# --------------------------------------------------------------------------- camera and paper
def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(n, H, W) digits each blurred by a Gaussian of `sigma` (n,) px."""
    radius = max(1, math.ceil(3 * float(sigma.max())))
    return _separable(x[:, None], _gaussian_kernels(sigma, radius))[:, 0]


def lowres(x: torch.Tensor, side: int) -> torch.Tensor:
    """(n, H, W) digits taken down to `side` x `side` (area average) and back up (bilinear):
    a low-resolution scan enlarged."""
    h, w = x.shape[1:]
    small = F.interpolate(x[:, None], size=(side, side), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


def smooth_field(n: int, cells: int, generator: torch.Generator | None,
                 device: torch.device | str, side: int = 28) -> torch.Tensor:
    """(n, side, side) smooth random fields in [0, 1]: a `cells` x `cells` grid of uniform
    values, interpolated bicubically (uneven light, ink or paper)."""
    coarse = torch.rand(n, 1, cells, cells, generator=generator, device=device)
    fine = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=True)
    return fine[:, 0].clamp_(0.0, 1.0)


def ruled_line(x: torch.Tensor, on: torch.Tensor, level: tuple[float, float],
               generator: torch.Generator | None) -> torch.Tensor:
    """What a notebook's ruled lines leave after the contrast stretch: faint horizontal lines
    one px thick, 8-13 px apart (a rule every 30-45 % of a digit's photo), at a random phase
    and grey level, across the digits where `on` (n,) is set; ink over them wins."""
    n, h, _ = x.shape
    u = torch.rand(n, 3, generator=generator, device=x.device)
    spacing = 8.0 + 5.0 * u[:, 0]
    offset = u[:, 1] * spacing
    grey = (level[0] + (level[1] - level[0]) * u[:, 2]) * on
    rows = torch.arange(h, device=x.device, dtype=torch.float32)[None, :]
    hit = torch.remainder(rows - offset[:, None], spacing[:, None]) < 1.0  # (n, H)
    return torch.maximum(x, (hit * grey[:, None])[:, :, None].expand_as(x))


def _dct_matrix(device: torch.device | str) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix D: coefficients = D @ block @ D.T."""
    k = torch.arange(8, dtype=torch.float32, device=device)
    d = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """(n, H, W) digits through JPEG's lossy step at `quality` (n,) in 1..100: 8x8 blocks
    (the field padded to whole blocks) level-shifted, DCT-transformed, divided by the standard
    luminance table scaled as libjpeg does, rounded, and transformed back."""
    n, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    p = F.pad(x[:, None], (0, pw, 0, ph), mode="replicate")[:, 0] - 128.0  # as encoders pad
    bh, bw = p.shape[1] // 8, p.shape[2] // 8
    blocks = p.reshape(n, bh, 8, bw, 8).permute(0, 1, 3, 2, 4)  # (n, bh, bw, 8, 8)
    d = _dct_matrix(x.device)
    coef = d @ blocks @ d.T
    q = quality.clamp(1.0, 100.0)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2 * q) / 100.0  # libjpeg's quality scaling
    table = torch.tensor(_JPEG_Q, dtype=torch.float32, device=x.device).reshape(8, 8)
    step = (table[None] * scale[:, None, None]).round_().clamp_(1.0, 255.0)[:, None, None]
    coef = (coef / step).round_() * step
    out = (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(n, bh * 8, bw * 8) + 128.0
    return out[:, :h, :w]
