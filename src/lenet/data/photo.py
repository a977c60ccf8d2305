"""A digit (or a string of digits) as a person's photo or scan of it would show it.

MNIST's digits are white ink on black, 20 px tall, clean. What a user hands ``lenet predict``
is dark ink on light paper, photographed or scanned: tinted, textured paper, blue or black ink
that is not quite black, blur, JPEG blocks, notebook lines through the digit, uneven light, a
camera not square to the page, a thick marker or a thin ballpoint. :func:`render` makes such a
picture from an MNIST-style ink image, one :data:`STYLES` entry at a time, so that each kind of
degradation can be measured on its own (the real-input suite, :mod:`lenet.data.suites`; the
photo part of the string benchmark, :mod:`lenet.data.strings`).

Every style starts from the same picture, drawn at random but mild: the ink upscaled smoothly
(bicubic, ``scale`` times), laid on paper with its tint and texture, in an ink colour and level,
with a slight camera blur and sensor noise. The style then adds its own degradation, stronger.
Strokes are thickened and thinned with :func:`lenet.data.geometry.stroke`, and the noise is
:func:`lenet.data.geometry.gaussian`. Everything is drawn from the ``rng`` handed in, so the
same generator state gives the same picture, byte for byte.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFilter

from lenet.data.geometry import gaussian, stroke

STYLES = ("ink", "blur", "jpeg", "ruled", "gradient", "perspective", "marker", "ballpoint")

# Pens, as RGB on white at full strength: black, blue-black, blue, a grey pencil-like graphite.
_PENS = np.array([[22, 22, 28], [25, 32, 70], [28, 45, 140], [60, 60, 66]], dtype=np.float32)
# Notebook rules: light blue, as printed ruled paper (what the line takes from white paper).
_RULE = np.array([70.0, 38.0, 8.0], dtype=np.float32)


def render(ink: np.ndarray, style: str, rng: np.random.Generator, scale: int = 4) -> np.ndarray:
    """uint8 (H, W) white-on-black ink (a 28x28 MNIST digit, a 28 x W string) -> uint8 RGB
    (H * scale, W * scale, 3): dark ink on light paper, degraded as `style` says (one of
    :data:`STYLES`). Deterministic given `rng`.

    >>> import numpy as np
    >>> digit = np.zeros((28, 28), np.uint8); digit[6:22, 12:16] = 255   # a "1"
    >>> photo = render(digit, "ruled", np.random.default_rng(0))
    >>> photo.shape, photo.dtype, bool(photo[0, 0].mean() > photo[14 * 4, 14 * 4].mean())
    ((112, 112, 3), dtype('uint8'), True)
    """
    if style not in STYLES:
        raise ValueError(f"unknown photo style {style!r}; styles: {', '.join(STYLES)}")
    ink = np.asarray(ink)
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"expected a 2-D (H, W) ink image, got shape {ink.shape}")
    if not isinstance(scale, int) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be a whole number in 1..16, got {scale!r}")
    torch_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    mask = _upscale(ink, scale)  # ink coverage 0..1 at the photo's size
    if style == "marker":
        mask = _restroke(mask, rng.uniform(0.6, 1.3) * scale, soften=0.25 * scale)
    elif style == "ballpoint":
        mask = _restroke(mask, -rng.uniform(0.3, 0.5) * scale, soften=0.0, sharpen=True)
    elif style == "perspective":
        mask = _perspective(mask, rng, rng.uniform(0.06, 0.12))
    paper = _paper(mask.shape, rng, torch_gen, ruled=style == "ruled")
    pen = _PENS[rng.integers(len(_PENS))] * rng.uniform(0.8, 1.15)
    level = rng.uniform(0.78, 1.0)  # how much of the paper the ink hides where it is densest
    alpha = (level * mask)[..., None]
    img = paper * (1.0 - alpha) + np.minimum(pen, paper) * alpha
    depth = rng.uniform(0.1, 0.2) if style == "gradient" else rng.uniform(0.0, 0.06)
    img *= _light(mask.shape, rng, depth)[..., None]
    img = _contrast(img, rng.uniform(0.85, 1.1))
    sigma = rng.uniform(0.3, 0.8) if style == "blur" else rng.uniform(0.08, 0.2)
    out = _blur(_to_uint8(img), sigma * scale)
    if style == "blur":  # and a low-resolution scan, upscaled: 28 px seen as 14-24
        out = _resample(out, rng.uniform(0.5, 0.85) / scale)
    sensor = rng.uniform(1.0, 3.0)
    noisy = gaussian(torch.from_numpy(out.copy()).permute(2, 0, 1), sensor, torch_gen)
    out = _to_uint8(noisy.permute(1, 2, 0).numpy())
    if style == "jpeg":
        out = _jpeg(out, int(rng.integers(8, 31)))
    return out


# --------------------------------------------------------------------------- the ink
def _upscale(ink: np.ndarray, scale: int) -> np.ndarray:
    """Ink coverage 0..1, `scale` times larger, smooth (bicubic: a photo has no square pixels)."""
    h, w = ink.shape
    img = Image.fromarray(ink.astype(np.float32) / np.float32(255.0), mode="F")
    big = img.resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)


def _restroke(mask: np.ndarray, width: float, soften: float, sharpen: bool = False
              ) -> np.ndarray:
    """The strokes dilated (`width` > 0, a marker) or eroded (< 0, a ballpoint) by |width|
    photo pixels a side; a marker's edge softened, a ballpoint's line made crisp and dense
    (the erosion leaves a faint core: a ballpoint lays down full ink along a thin line)."""
    out = stroke(torch.from_numpy(mask)[None], width)[0].numpy()
    if sharpen:
        peak = max(float(out.max()), 1e-6)
        out = np.clip((out / peak - 0.15) / 0.55, 0.0, 1.0)
    if soften > 0:
        out = _blur_f(out, soften)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _perspective(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """The page seen by a camera not quite square to it: each corner moved by up to `amount`
    of the image's size (a mild homography), then shrunk to keep the ink inside the field."""
    h, w = mask.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    size = np.array([w, h], dtype=np.float64)
    # Inset a little first, so that the moved corners keep the ink in the picture.
    centre = size / 2
    seen = centre + (corners - centre) * (1 - amount) + rng.uniform(-1, 1, (4, 2)) * amount * size
    coeffs = _homography(seen, corners)  # PIL maps output pixels back to input ones
    img = Image.fromarray(mask, mode="F").transform(
        (w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 8 coefficients of the projective map taking the 4 points `src` to `dst`
    (``x' = (a x + b y + c) / (g x + h y + 1)``, ``y'`` likewise with d, e, f)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows), np.array(rhs))


# --------------------------------------------------------------------------- the paper
def _paper(shape: tuple[int, ...], rng: np.random.Generator, gen: torch.Generator,
           ruled: bool) -> np.ndarray:
    """Float RGB paper (h, w, 3): a light, slightly tinted colour; a soft mottle (fibres,
    uneven coating) and fine grain; notebook rules when `ruled`."""
    h, w = shape
    base = rng.uniform(215.0, 250.0)
    tint = rng.uniform(-6.0, 6.0, 3) + np.array([3.0, 1.0, -3.0]) * rng.uniform(0.0, 2.0)
    paper = np.empty((h, w, 3), dtype=np.float32)
    paper[...] = np.clip(base + tint, 0.0, 255.0)
    coarse = rng.normal(0.0, 1.0, (max(2, h // 24), max(2, w // 24))).astype(np.float32)
    mottle = np.asarray(Image.fromarray(coarse, mode="F").resize(
        (w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    grain = gaussian(torch.zeros(1, h, w), 1.0, gen)  # clipped at 0: one-sided specks
    texture = mottle * rng.uniform(1.0, 4.0) - grain[0].numpy() * rng.uniform(1.0, 4.0)
    paper += texture[..., None]
    if ruled:
        paper -= _rules((h, w), rng)[..., None] * _RULE * rng.uniform(0.3, 0.6)
    return paper


def _rules(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Coverage 0..1 of notebook lines: horizontal, evenly spaced (about 2-3 across a digit's
    height), slightly tilted, 1-2.5 px thick, anti-aliased; they cross the ink."""
    h, w = shape
    spacing = h * rng.uniform(0.3, 0.45)
    tilt = np.tan(np.radians(rng.uniform(-1.5, 1.5)))
    half = rng.uniform(0.5, 1.25)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    offset = rng.uniform(0.0, spacing)
    phase = np.mod(y - tilt * (x - w / 2) - offset, spacing)
    dist = np.minimum(phase, spacing - phase)  # to the nearest line
    return np.clip(half + 0.5 - dist, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- the camera
def _light(shape: tuple[int, int], rng: np.random.Generator, depth: float) -> np.ndarray:
    """Illumination (h, w) in (1 - depth)..1: light falling off across the page in a random
    direction, a little faster on one side (a hand's or a phone's shadow)."""
    h, w = shape
    angle = rng.uniform(0.0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * (x / w - 0.5) + np.sin(angle) * (y / h - 0.5)) / 0.71 * 0.5 + 0.5
    ramp = np.clip(ramp, 0.0, 1.0) ** rng.uniform(1.0, 2.0)
    return (1.0 - depth * ramp).astype(np.float32)


def _resample(img: np.ndarray, factor: float) -> np.ndarray:
    """uint8 RGB seen at `factor` of its size (area-averaged), then upscaled back smoothly
    (bicubic), as a low-resolution scan enlarged on screen."""
    h, w = img.shape[:2]
    small = Image.fromarray(img, mode="RGB").resize(
        (max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.uint8)


def _contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """Contrast about mid-grey: a flat (< 1) or punchy (> 1) exposure."""
    return (img - 128.0) * factor + 128.0


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 RGB under a Gaussian blur of `sigma` pixels (Pillow's)."""
    if sigma <= 0:
        return img
    out = Image.fromarray(img, mode="RGB").filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(out, dtype=np.uint8)


def _blur_f(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A 0..1 float mask under a Gaussian blur of `sigma` pixels (at 1/255 precision)."""
    img = Image.fromarray(_to_uint8(mask * 255.0), mode="L").filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(img, dtype=np.float32) / np.float32(255.0)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB through a JPEG of that `quality` (Pillow's encoder, 4:2:0 chroma), decoded."""
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
