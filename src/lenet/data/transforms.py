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

from lenet.data.deslant import deslant as deslant_images
from lenet.errors import WeightsError

# What a saved Preprocessing may ask for. The registry's models pad by 0, 2 or 6 pixels and
# resize to 16 at most; these bounds are loose on purpose (a model's exact input size is checked
# against the model itself when weights are loaded, see lenet.models.weights) and only keep a forged
# file from making every digit a 3000x3000 float plane (36 MB each, 18 GB for a batch of 512).
MAX_PAD = 16
MAX_RESIZE = 112  # four times MNIST's 28 px
STD_RANGE = (1e-6, 1e6)  # beyond these, pixels become ~1e8 or ~1e-4: no model trains there
MAX_MEAN = 1e6


@dataclass(frozen=True)
class Preprocessing:
    """x_uint8 -> (deslant) -> (resize) -> zero-pad -> (x/255 - mean) / std, as one (N, 1, H, W)
    float tensor.

    Padding happens on the uint8 image with 0 (the background), so the padded border gets the
    same value as the digit's own background after normalization, as in the 1998 paper.
    """

    mean: float = 0.0
    std: float = 1.0
    pad: int = 0  # pixels added on each side after resizing
    resize: int | None = None  # side length to resize the 28x28 digit to first (LeNet-1: 16)
    deslant: bool = False  # shear each digit upright first (lenet.data.deslant, the paper's)

    @property
    def input_size(self) -> int:
        return (self.resize or 28) + 2 * self.pad

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        x = images.float()
        if self.deslant:
            x = deslant_images(x.squeeze(1)).unsqueeze(1)
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
        """The preprocessing stored in a file, checked for sanity (its checksum only proves it
        is the one written, not that it is usable): a :class:`WeightsError` naming `source`."""
        if not isinstance(d, dict):
            raise WeightsError(f"{source}: invalid preprocessing {d!r:.80} (expected an object "
                               "with keys mean, std, pad, resize)")
        try:
            prep = cls(mean=_number(d["mean"]), std=_number(d["std"]),
                       pad=_whole(d.get("pad", 0)),
                       resize=None if d.get("resize") is None else _whole(d["resize"]),
                       deslant=_flag(d.get("deslant", False)))
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise WeightsError(
                f"{source}: invalid preprocessing {d!r:.120} ({e}); expected keys mean, std, "
                "pad, resize") from None
        prep.check(source)
        return prep

    def check(self, source: str) -> None:
        """Raise :class:`WeightsError` unless every field is in its sane range (see MAX_PAD)."""
        problem = None
        low, high = STD_RANGE
        if not low <= self.std <= high:  # NaN fails too
            problem = f"std {self.std!r} (expected a finite number in {low:g}..{high:g})"
        elif not abs(self.mean) <= MAX_MEAN:
            problem = f"mean {self.mean!r} (expected a finite number, at most {MAX_MEAN:g} in size)"
        elif not 0 <= self.pad <= MAX_PAD:
            problem = f"pad {self.pad} (expected 0..{MAX_PAD} pixels)"
        elif self.resize is not None and not 1 <= self.resize <= MAX_RESIZE:
            problem = f"resize {self.resize} (expected 1..{MAX_RESIZE} pixels, or null)"
        if problem is not None:
            raise WeightsError(f"{source}: invalid preprocessing: {problem}; the file was "
                               "edited or forged (retrain with `lenet train`)")


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{v!r:.40} is not a number")
    return float(v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"deslant {v!r:.40} is not true or false")
    return v


def _whole(v: Any) -> int:
    """An int, or a float with no fractional part (JSON writers may give 2.0); never a string."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{v!r:.40} is not a whole number")
    return v


def scaled(background: float, foreground: float, pad: int = 0) -> Preprocessing:
    """Preprocessing that maps pixel 0 to `background` and 255 to `foreground` (the paper's way)."""
    std = 1.0 / (foreground - background)
    return Preprocessing(mean=-background * std, std=std, pad=pad)
