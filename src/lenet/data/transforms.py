"""Device-side preprocessing: uint8 digits in, normalized float planes out.

The dataset stays uint8 on the device (60,000 digits are 47 MB); every model's exact input
transform is a :class:`Preprocessing` value that is saved in the weights' metadata, so that
`lenet evaluate`, `lenet predict` and the web app feed the network exactly what training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lenet.errors import WeightsError


@dataclass(frozen=True)
class Preprocessing:
    """x_uint8 -> (resize) -> zero-pad -> (x/255 - mean) / std, as one (N, 1, H, W) float tensor.

    Padding happens on the uint8 image with 0 (the background), so the padded border gets the
    same value as the digit's own background after normalization, as in the 1998 paper.
    """

    mean: float = 0.0
    std: float = 1.0
    pad: int = 0  # pixels added on each side after resizing
    resize: int | None = None  # side length to resize the 28x28 digit to first (LeNet-1: 16)

    @property
    def input_size(self) -> int:
        return (self.resize or 28) + 2 * self.pad

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.float()
        if self.resize is not None and self.resize != x.shape[-1]:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="area")
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        # One fused multiply-add instead of divide-subtract-divide.
        scale = 1.0 / (255.0 * self.std)
        return x.mul_(scale).sub_(self.mean / self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "weights metadata") -> Preprocessing:
        try:
            return cls(
                mean=float(d["mean"]),
                std=float(d["std"]),
                pad=int(d.get("pad", 0)),
                resize=None if d.get("resize") is None else int(d["resize"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(
                f"{source}: invalid preprocessing {d!r} ({e}); expected keys mean, std, pad, resize"
            ) from None


def scaled(background: float, foreground: float, pad: int = 0) -> Preprocessing:
    """Preprocessing that maps pixel 0 to `background` and 255 to `foreground` (the paper's way)."""
    std = 1.0 / (foreground - background)
    return Preprocessing(mean=-background * std, std=std, pad=pad)
