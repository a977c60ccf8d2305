"""The digit ``/api/activations`` shows: an upload's preprocessing steps, and live distortions.

:func:`upload_digit` preprocesses an image exactly as ``lenet predict`` does
(:mod:`lenet.inference.predict`:
decode, grayscale, MNIST normalization) and keeps small pictures of the steps on the way:
the decoded grayscale image, the same with ink made white, the crop to the ink's bounding box,
and the final 28x28. The pictures are for people; the digit is
:func:`lenet.inference.predict.mnist_preprocess`'s.

:class:`Transform` is the page's sliders: rotation, scale, shift, squeeze, shear, stroke width
and noise, applied on the server to the MNIST-style 28x28 digit (after the preprocessing, so
that it is not undone by the size and centre normalization), in this order: stroke width
(grayscale dilation or erosion with a 3x3 square, once per pixel of width), one affine map about
the image centre (bilinear, background outside), then Gaussian noise from a seeded generator
(the same request always gets the same answer), rounded back to 0..255.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

THUMB = 56  # longest side of a preprocessing-step picture, in pixels
SIDE = 28

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

    def inverse_affine(self) -> list[list[float]]:
        """The 2x3 map from an output pixel to where it samples the input, in the normalized
        coordinates of ``affine_grid`` (align_corners: -1 and 1 are the corner pixels' centres).

        Forward, about the centre: p' = R(rotate) @ Shear(shear) @ diag(s q, s / q) @ p + t,
        with y pointing down, so a positive angle turns the digit counter-clockwise on screen."""
        s, q, k = self.scale, self.squeeze, self.shear
        a = math.radians(self.rotate)
        c, n = math.cos(a), math.sin(a)
        # diag(s q, s/q), then shear x += k y, then rotation [[c, n], [-n, c]].
        m = [[s * q, k * s / q], [0.0, s / q]]
        f = [[c * m[0][0] + n * m[1][0], c * m[0][1] + n * m[1][1]],
             [-n * m[0][0] + c * m[1][0], -n * m[0][1] + c * m[1][1]]]
        det = f[0][0] * f[1][1] - f[0][1] * f[1][0]
        inv = [[f[1][1] / det, -f[0][1] / det], [-f[1][0] / det, f[0][0] / det]]
        tx, ty = self.shift_x * 2 / (SIDE - 1), self.shift_y * 2 / (SIDE - 1)
        return [[inv[0][0], inv[0][1], -(inv[0][0] * tx + inv[0][1] * ty)],
                [inv[1][0], inv[1][1], -(inv[1][0] * tx + inv[1][1] * ty)]]


def apply(digit: np.ndarray, t: Transform) -> np.ndarray:
    """uint8 (28, 28) white-on-black digit -> the same, transformed by `t`."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    if t == Transform(seed=t.seed):
        return np.asarray(digit, dtype=np.uint8).copy()
    x = torch.from_numpy(np.asarray(digit, dtype=np.float32).copy())[None, None]
    for _ in range(abs(t.stroke)):
        x = F.max_pool2d(x, 3, 1, 1) if t.stroke > 0 else -F.max_pool2d(-x, 3, 1, 1)
    theta = torch.tensor([t.inverse_affine()], dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if t.noise > 0:
        gen = torch.Generator().manual_seed(t.seed)
        x = x + torch.randn(x.shape, generator=gen) * (t.noise * 255.0)
    return x.clamp(0, 255).round()[0, 0].numpy().astype(np.uint8)


# --------------------------------------------------------------------------- uploads
def _thumb(name: str, gray: np.ndarray, box: list[int] | None = None) -> dict[str, Any]:
    """A picture of one step, its longest side at most THUMB pixels (area-averaged)."""
    import numpy as np
    from PIL import Image

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


def _ink_box(white: np.ndarray) -> list[int] | None:
    """The ink's bounding box as lenet.inference.predict.mnist_preprocess finds it (for the
    picture)."""
    import numpy as np

    from lenet.inference.predict import INK_THRESHOLD

    border = np.concatenate([white[0], white[-1], white[1:-1, 0], white[1:-1, -1]])
    background, peak = float(np.median(border)), float(white.max())
    if peak <= background:
        return None
    ink = (white - background) * (255.0 / (peak - background)) >= INK_THRESHOLD * 255.0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]


def upload_digit(data: bytes, name: str = "upload") -> tuple[np.ndarray, list[dict[str, Any]]]:
    """An uploaded image -> (the uint8 28x28 digit exactly as
    lenet.inference.predict.preprocess_image
    makes it, pictures of the steps). Raises lenet.inference.predict's ImageError subclasses."""
    import numpy as np

    from lenet.inference import predict

    img = predict.open_image(data, name)
    try:
        gray = predict.to_grayscale(img, name)
    finally:
        img.close()
    digit = predict.mnist_preprocess(gray, name)
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    inverted = float(np.median(border)) > 127.5  # the rule mnist_preprocess applies
    white = 255.0 - gray if inverted else gray
    box = _ink_box(white)
    steps = [_thumb("grayscale", gray),
             _thumb("ink made white" if inverted else "ink already white", white, box)]
    if box is not None:
        steps.append(_thumb("cropped to the ink", white[box[0]:box[2], box[1]:box[3]]))
    steps.append(_thumb("scaled to 20 px, centred by mass (28x28)", digit.astype(np.float64)))
    return digit, steps
