"""The digit ``/api/activations`` shows: an upload's preprocessing steps, and live distortions.

:func:`upload_digit` preprocesses an image exactly as ``lenet predict`` does, with
:func:`lenet.inference.preprocess.mnist_trace`, and makes small pictures of the steps that
trace kept: the decoded grayscale image, the same with ink made white (and the ink's bounding
box), the crop to that box, and the final 28x28. The pictures are for people; the digit is the
trace's.

:class:`Transform` is the page's sliders: rotation, scale, shift, squeeze, shear, stroke width
and noise, applied on the server to the MNIST-style 28x28 digit (after the preprocessing, so
that it is not undone by the size and centre normalization) with :mod:`lenet.data.geometry`, in
this order: stroke width (grayscale dilation or erosion with a 3x3 square, once per pixel of
width), one affine map about the image centre (bilinear, background outside), then Gaussian
noise from a seeded generator (the same request always gets the same answer), rounded back to
0..255. ``static/mnist.js`` does the same in the browser (without a server).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from PIL import Image

from lenet.data import geometry
from lenet.inference.decoding import open_image, to_grayscale
from lenet.inference.preprocess import mnist_trace

THUMB = 56  # longest side of a preprocessing-step picture, in pixels

# field: (lowest, highest, what it is); a slider on the page spans part of each range.
LIMITS: dict[str, tuple[float, float, str]] = {
    "rotate": (-180.0, 180.0, "degrees, counter-clockwise"),
    "scale": (0.25, 4.0, "size factor"),
    "shift_x": (-28.0, 28.0, "pixels to the right"),
    "shift_y": (-28.0, 28.0, "pixels down"),
    "squeeze": (0.25, 4.0, "width times q, height divided by q"),
    "shear": (-2.0, 2.0, "k in x' = x + k (y - centre)"),
    "stroke": (-3.0, 3.0, "whole pixels: > 0 thicker (dilate), < 0 thinner (erode)"),
    "noise": (0.0, 1.0, "Gaussian noise, standard deviation as a fraction of 255"),
    "seed": (0.0, 2.0**31 - 1, "whole number seeding the noise"),
}
_WHOLE = ("stroke", "seed")


class TransformError(ValueError):
    """A transform field is unknown, not a number, or out of range (the message says which)."""


@dataclass(frozen=True)
class Transform:
    rotate: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    squeeze: float = 1.0
    shear: float = 0.0
    stroke: int = 0
    noise: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, doc: Any) -> Transform:
        """From a JSON object of some of the fields; a TransformError names a bad one."""
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise TransformError('"transform" must be an object such as {"rotate": 15}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in doc if k not in known)
        if unknown:
            raise TransformError(f'"transform": unknown field {unknown[0][:40]!r}; known: '
                                 f"{', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, v in doc.items():
            lo, hi, what = LIMITS[key]
            # Compared as Python numbers: NaN, Infinity and huge integers all fail here.
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise TransformError(f'"transform.{key}" must be a number in {lo:g}..{hi:g} '
                                     f"({what})")
            if key in _WHOLE and v != int(v):
                raise TransformError(f'"transform.{key}" must be a whole number')
            values[key] = int(v) if key in _WHOLE else float(v)
        return cls(**values)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def forward(self) -> torch.Tensor:
        """The affine part as :func:`lenet.data.geometry.affine_map`'s (2, 3) forward map, in
        pixels about the centre: ``p' = R(rotate) @ Shear(shear) @ diag(s q, s / q) @ p + t``,
        with y pointing down, so a positive angle turns the digit counter-clockwise on screen."""
        return geometry.affine_map(scale=self.scale, squeeze=self.squeeze, shear=self.shear,
                                   rotate=self.rotate, shift_x=self.shift_x,
                                   shift_y=self.shift_y)


def apply(digit: np.ndarray, t: Transform) -> np.ndarray:
    """uint8 (28, 28) white-on-black digit -> the same, transformed by `t`."""
    if t == Transform(seed=t.seed):
        return np.asarray(digit, dtype=np.uint8).copy()
    x = torch.from_numpy(np.asarray(digit, dtype=np.float32).copy())[None]
    if t.stroke:
        x = geometry.stroke(x, t.stroke)
    x = geometry.warp(x, t.forward())
    if t.noise > 0:
        x = geometry.gaussian(x, t.noise * 255.0, torch.Generator().manual_seed(t.seed))
    return x.round()[0].numpy().astype(np.uint8)


# --------------------------------------------------------------------------- uploads
def _thumb(name: str, gray: np.ndarray, box: tuple[int, int, int, int] | None = None
           ) -> dict[str, Any]:
    """A picture of one step, its longest side at most THUMB pixels (area-averaged)."""
    h, w = gray.shape
    f = min(1.0, THUMB / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    img = Image.fromarray(np.clip(gray, 0, 255).astype(np.float32), mode="F")
    small = np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float64)
    step: dict[str, Any] = {"name": name, "width": size[0], "height": size[1],
                            "pixels": np.rint(np.clip(small, 0, 255)).astype(int)
                            .reshape(-1).tolist()}
    if box is not None:  # [top, left, bottom, right] in the picture's pixels
        step["box"] = [math.floor(box[0] * f), math.floor(box[1] * f),
                       math.ceil(box[2] * f), math.ceil(box[3] * f)]
    return step


def upload_digit(data: bytes, name: str = "upload") -> tuple[np.ndarray, list[dict[str, Any]]]:
    """An uploaded image -> (the uint8 28x28 digit exactly as
    :func:`lenet.inference.preprocess.preprocess_image` makes it, pictures of the steps).
    Raises lenet.inference.preprocess's ImageError subclasses."""
    img = open_image(data, name)
    try:
        gray = to_grayscale(img, name)
    finally:
        img.close()
    trace = mnist_trace(gray, name)
    white = "ink made white" if trace.inverted else "ink already white"
    steps = [_thumb("grayscale", trace.gray), _thumb(white, trace.white, trace.box),
             _thumb("cropped to the ink", trace.crop),
             _thumb("scaled to 20 px, centred by mass (28x28)", trace.digit.astype(np.float64))]
    return trace.digit, steps
