"""Random planar affine distortions of MNIST digits, generated on the device, one per sample.

The 1998 paper (Section III-C) trains LeNet-5 on the 60,000 originals plus 540,000 distorted
copies, nine per digit, made once by random combinations of horizontal and vertical translation,
scaling, squeezing (horizontal compression with vertical elongation, or the reverse) and
horizontal shearing; 20 passes of 60,000 patterns drawn from those 600,000, so each pattern is
seen about twice. It does not give the ranges.

Here the copies are not stored: every time a training digit is drawn, it is kept as it is with
probability ``p_original`` (default 0.1, the originals' share 60,000 / 600,000 of the paper's
pool) and otherwise replaced by a fresh random distortion. Over 20 passes that is the same mix
of originals and distortions as the paper's, with never the same distortion twice instead of
each one twice. The ranges (our choice, kept small enough that a digit stays a readable digit
of the same class and inside the 28x28 field):

- translation: uniform in ±2 pixels, horizontally and vertically, independently;
- scaling: one factor s uniform in [0.9, 1.1] for both axes;
- squeezing: a factor q uniform in [0.9, 1.1]; width times q and height divided by q
  (q < 1: compressed horizontally and elongated vertically; q > 1: the reverse);
- horizontal shear: x' = x + k (y - centre), k uniform in [-0.3, 0.3] (about ±17°).

All five are drawn independently per sample, composed into one affine map about the image
centre (:func:`lenet.data.geometry.affine_map`), and applied with bilinear sampling, zero (the
background) outside (:func:`lenet.data.geometry.warp`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenet.data.geometry import affine_map, warp


@dataclass(frozen=True)
class Distortion:
    translate: float = 2.0  # pixels, each axis
    scale: float = 0.1  # s in [1 - scale, 1 + scale]
    squeeze: float = 0.1  # q in [1 - squeeze, 1 + squeeze]
    shear: float = 0.3  # k in [-shear, shear]
    p_original: float = 0.1  # probability that a digit is left undistorted

    def matrices(self, n: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
        """(n, 2, 3) forward maps in pixel units about the image centre: p' = A p + t."""
        u = torch.rand(n, 6, generator=generator, device=device) * 2 - 1  # uniform in [-1, 1]
        s = 1 + self.scale * u[:, 0]
        q = 1 + self.squeeze * u[:, 1]
        k = self.shear * u[:, 2]
        tx, ty = self.translate * u[:, 3], self.translate * u[:, 4]
        keep = (u[:, 5] + 1) / 2 < self.p_original
        a = affine_map(scale=s, squeeze=q, shear=k, shift_x=tx, shift_y=ty)
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)
        return torch.where(keep[:, None, None], identity, a)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """uint8 or float (B, 28, 28) digits -> float (B, 28, 28) distorted digits in [0, 255]."""
        return warp(images, self.matrices(len(images), generator, images.device))
