"""Device-side preprocessing: uint8 digits in, normalized float planes out.

The dataset stays uint8 on the device (60,000 digits are 47 MB); every model's exact input
transform is a :class:`Preprocessing` value that is saved in the weights' metadata, so that
`lenet evaluate`, `lenet predict` and the web app feed the network exactly what training did.

:class:`DigitTransform` is the same preprocessing with torchvision's contract, as
``Weights.transforms()`` returns it: a PIL image, a uint8 tensor or ToTensor's float tensor in
[0, 1] in, the same numbers out for each, and anything else (a tensor already normalized with
other statistics included) refused with a ValueError or TypeError that says what it expected.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
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


# --------------------------------------------------------------------------- the user's side
SIDE = 28  # every model's preprocessing takes MNIST's 28x28 digits in
PIXELS = "dtype uint8 with values 0..255 or float with values in [0, 1]"  # in every refusal
_DIGITS = (f"one MNIST-style digit (white ink on black) shaped ({SIDE}, {SIDE}) or "
           f"(1, {SIDE}, {SIDE}), or a batch (N, 1, {SIDE}, {SIDE}) or (N, {SIDE}, {SIDE})")
_PIL_MODES = ("L", "1", "P", "RGB")  # what PIL's convert("L") turns into gray without a choice


@dataclass(frozen=True)
class DigitTransform:
    """A set of weights' input transform with torchvision's contract (``Weights.transforms()``).

    In: an MNIST-style digit, 28x28 gray levels with white ink on black as
    :class:`lenet.data.MNIST`'s items are: a PIL image (mode L; 1, P and RGB are converted to
    L), a uint8 tensor or array (0..255), or a float one in [0, 1] such as ``ToTensor()`` makes
    (float16 and bfloat16 are rounded to the nearest 1/255 first, which they cannot hold
    exactly); shaped (28, 28) or (1, 28, 28), or (N, 1, 28, 28) and (N, 28, 28) (as
    ``MNIST.data``) for a batch of N > 1. Out: float32 (1, S, S) for one digit, as
    torchvision's transforms give, so that a DataLoader stacks them; (N, 1, S, S) for a batch;
    on the input's device; S is the model's input size (``input_size``). Every form of the same
    digit gives the same numbers, bit for bit, as :class:`Preprocessing` gives on uint8.

    Anything else is refused with a TypeError or ValueError saying what was expected, and so
    is a float tensor with values outside [0, 1]: one already normalized with other statistics
    (``Normalize((0.1307,), (0.3081,))`` makes values from -0.42 to 2.82).

    >>> t = DigitTransform(Preprocessing(mean=0.5, std=0.5, pad=2))
    >>> digit = torch.zeros(28, 28, dtype=torch.uint8)
    >>> t(digit).shape, t(digit)[0, 0, 0].item()
    (torch.Size([1, 32, 32]), -1.0)
    >>> torch.equal(t(digit), t(digit.float() / 255))   # ToTensor's output: the same numbers
    True
    """

    preprocessing: Preprocessing

    @property
    def input_size(self) -> int:
        """The side of the square planes it makes (the model's input size)."""
        return self.preprocessing.input_size

    def __call__(self, pic: Any) -> torch.Tensor:
        # The shape is checked first, before an array is copied (a PIL image: its size).
        single = _one_digit(tuple(pic.shape)) if isinstance(pic, (torch.Tensor, np.ndarray)) \
            else True
        x = _as_tensor(pic)
        out = self.preprocessing(gray_levels(x.reshape(-1, SIDE, SIDE), _DIGITS))
        return out[0] if single else out

    def __repr__(self) -> str:
        p, side = self.preprocessing, self.input_size
        return "\n".join([
            f"{type(self).__name__}(",
            f"    input: {SIDE}x{SIDE} digits, white on black (PIL image, uint8 0..255 or "
            "float 0..1)",
            f"    deslant={p.deslant}, resize={p.resize}, pad={p.pad}",
            f"    (x - {p.mean:g}) / {p.std:g} with x in [0, 1]",
            f"    output: float32 (1, {side}, {side})",
            ")"])


def gray_levels(x: torch.Tensor, expected: str) -> torch.Tensor:
    """`x`'s pixels as gray levels 0..255, checked: uint8 as it is; another integer dtype
    checked to lie in 0..255 and made uint8; a float dtype (ToTensor's output) checked to lie in
    [0, 1] and scaled by 255 to float32, which gives ToTensor's values of uint8 pixels back
    exactly. A dtype that is no image's is a TypeError, values out of range (NaN included) a
    ValueError; both name `expected` (the shapes the caller takes), the dtypes and ranges."""
    if x.dtype == torch.uint8:
        return x
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"pixels of dtype {x.dtype}: expected {expected}, {PIXELS}")
    if x.numel() == 0:
        return x.to(torch.uint8)
    lo, hi = _extremes(x)
    if not x.is_floating_point():
        if lo < 0 or hi > 255:
            raise ValueError(f"integer pixels from {lo} to {hi}: expected {expected}, {PIXELS}")
        return x.to(torch.uint8)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"pixels include NaN or infinity: expected {expected}, {PIXELS}")
    if lo < 0:
        raise ValueError(
            f"float pixels from {lo:.4g} to {hi:.4g}: this looks already normalized (as by "
            "Normalize((0.1307,), (0.3081,))); give ToTensor's output in [0, 1] or uint8 "
            f"0..255, with no Normalize: the weights' transform normalizes itself; expected "
            f"{expected}, {PIXELS}")
    if hi > 1:
        raise ValueError(
            f"float pixels up to {hi:.4g}: floats must lie in [0, 1] as ToTensor makes them "
            "(for 0..255 values convert to uint8 or divide by 255; values normalized with "
            f"other statistics are refused too); expected {expected}, {PIXELS}")
    if x.dtype in (torch.float16, torch.bfloat16):  # k/255 is not exact there: round it
        return (x.float() * 255).round_()
    return (x * 255).float()  # exact for k/255 in float32 and float64: the uint8 levels


def _one_digit(shape: tuple[int, ...]) -> bool:
    """Whether `shape` is one digit's (True) or a batch's (False); a ValueError if neither."""
    if not ((len(shape) in (2, 3) or (len(shape) == 4 and shape[1] == 1))
            and shape[-2:] == (SIDE, SIDE)):
        raise ValueError(f"input of shape {shape}: expected {_DIGITS}, {PIXELS} (resize other "
                         "images first, or give them to lenet.Predictor, which preprocesses "
                         "any picture as MNIST's digits were made)")
    return len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)


def _extremes(x: torch.Tensor) -> tuple[float, float]:
    try:
        return x.min().item(), x.max().item()
    except (NotImplementedError, RuntimeError):  # uint16..uint64: torch has no min for them
        wide = x.double()
        return wide.min().item(), wide.max().item()


def from_array(a: np.ndarray) -> torch.Tensor:
    """A numpy array as a tensor of its own: a copy, writable and in native byte order (which
    ``torch.from_numpy`` needs), never sharing the caller's memory."""
    return torch.from_numpy(np.array(a, dtype=a.dtype.newbyteorder("=")))


def _as_tensor(pic: Any) -> torch.Tensor:
    """A tensor, a numpy array or a PIL image as a tensor (arrays and images copied)."""
    if isinstance(pic, torch.Tensor):
        return pic
    if isinstance(pic, np.ndarray):
        if pic.dtype.kind not in "biuf":
            raise TypeError(f"array of dtype {pic.dtype}: expected {_DIGITS}, {PIXELS}")
        return from_array(pic)
    pil = sys.modules.get("PIL.Image")  # without PIL loaded, nothing can be a PIL image
    if pil is not None and isinstance(pic, pil.Image):
        if pic.size != (SIDE, SIDE):
            raise ValueError(f"PIL image of {pic.size[0]}x{pic.size[1]} pixels: expected "
                             f"{_DIGITS}, {PIXELS} (resize other images first, or give them "
                             "to lenet.Predictor, which preprocesses any picture as MNIST's "
                             "digits were made)")
        if pic.mode not in _PIL_MODES:
            raise ValueError(f"PIL image of mode {pic.mode}: expected mode L (grayscale) or one "
                             f"of {', '.join(_PIL_MODES[1:])}; convert it first")
        return torch.from_numpy(np.array(pic.convert("L") if pic.mode != "L" else pic))
    raise TypeError(f"got {type(pic).__name__}: expected a PIL image, a torch tensor or a "
                    f"numpy array holding {_DIGITS}, {PIXELS}")
