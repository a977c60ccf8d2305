"""The real-input suite: digits as people hand them to lenet, frozen, to measure weights by.

MNIST's test accuracy says little about a user's photo. This suite is built only from MNIST
*test* digits (whose writers are not the training set's) and from fonts, and shows them the
ways lenet meets real input:

- one part per photo style of :mod:`lenet.data.photo` (``ink``, ``blur``, ``jpeg``, ``ruled``,
  ``gradient``, ``perspective``, ``marker``, ``ballpoint``): the digit as a photo or scan of
  ink on paper;
- ``font``: digits of 20 handwriting-style fonts from Debian's packages (rendered once into
  ``glyphs.safetensors``, by ``benchmarks/make_glyphs.py``), each drawn at a random size,
  rotation, slant, stroke width and position, then photographed in a random style: a shift
  of style that MNIST's writers never show;
- ``drawn``: the digit traced with the web page's round pen (its skeleton, thinned, redrawn
  22 px wide on the 280 px pad, as a mouse draws), on a white pad kept at half resolution.

Each part holds :data:`SIZE` digits; the MNIST parts take disjoint subsets of the test set
(drawn with a fixed seed), the font part draws fonts and digits evenly. Every image is a
picture to be preprocessed as a user's file is (uint8 grayscale, dark ink on light paper:
what lenet's preprocessing makes of a colour photo first, Pillow's ITU-R 601 luma). Every
sample is drawn from its own generator, seeded by the part and its index, so a smaller build
(``size=``) is the start of the full one.

The build is deterministic. Each full part's SHA-256 is pinned in :data:`PINS` and checked
when it is built; built parts are cached under the data dir (``real-suite/``) as safetensors,
and checked again when read. The pins hold for the library versions they were made with
(:data:`PINNED_WITH`): Pillow's resampling and JPEG encoder make the pixels, so another
version may give other bytes, which is refused rather than measured.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.numpy import load, save

from lenet.data.datasets import default_data_dir, read_split
from lenet.data.geometry import affine_map, stroke, warp
from lenet.data.photo import STYLES, render
from lenet.errors import DatasetError
from lenet.storage import atomic

PARTS = (*STYLES, "font", "drawn")
MNIST_PARTS = (*STYLES, "drawn")  # each takes its own SIZE test digits
SIZE = 1000
SEED = 30  # the suite's seed (issue 30); every draw derives from it
SCALE = 3  # photos are 84x84 for a 28x28 digit
PAD = 280  # the web page's drawing pad, and its pen (app.js: lineWidth 22)
PEN = 22.0
FOLDER = "real-suite"
VERSION = 1
PINNED_WITH = "numpy 2.4, torch 2.13, Pillow 13"
PINS: dict[str, str] = {  # digest() of each full part
    "ink": "ba12642d8548054531805a4ed21113ae0b99ded317a9f583f1c8e9792203be06",
    "blur": "1b102d997ef3c672918d0afba71380ba27085dbd0549ec9a5bd5955a81cb4d8f",
    "jpeg": "fdc55f0de19aecf5fb01c2a60a967f0eab091aba85eae1b90bfc2a425314f7ec",
    "ruled": "803904cd88de395b844e8318517a30c61b7795cf194a7b38a50b7871c373a715",
    "gradient": "c065f6ffbf1cee6822c467646050320a8baed0cc500d95fd6407d21421a1e285",
    "perspective": "940a544af9a793be460c7785aa805b98692aab6983ad40265164e8cf02bcf780",
    "marker": "7c61df5d8e7e92c13d4975badac29b8a5a4cc80caa5931ddf71541b29962f97b",
    "ballpoint": "3fbe038843fa372810527575f5cb5d98f5d99d0b05abf3a982f936b2d15650ef",
    "font": "5bc8dee3fcab7ff734b525c78f1268091deaaacdbbe95fd02cda10038138907a",
    "drawn": "2f6bb6cec95c4974a40cc9551bff0d01e92acec5d372c2331ad5b44ca586cbcf",
}


class Part(NamedTuple):
    """One part: uint8 grayscale pictures (N, H, W), dark ink on light paper, and their
    int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray


class SuiteError(DatasetError):
    """A part of the suite could not be built or read as pinned."""


# --------------------------------------------------------------------------- the suite
def real_suite(parts: list[str] | tuple[str, ...] | None = None,
               data_dir: str | os.PathLike[str] | None = None) -> dict[str, Part]:
    """The frozen real-input suite: part name -> :class:`Part`, built once and cached.

    `parts`: names from :data:`PARTS` (default: all). Building a part the first time takes a
    few seconds; it is then read from ``<data_dir>/real-suite/<part>.safetensors``.

    For example (the first call builds the part, ~4 s, and caches it, ~8 MB)::

        suite = real_suite(["ink"])
        suite["ink"].images.shape        # (1000, 84, 84) gray photos, as a user's files
        suite["ink"].labels[:5]          # their digits

    :func:`build_part` builds a few digits of a part without the cache.
    """
    names = _check_parts(parts)
    return {name: _cached(name, cache_file(name, data_dir), data_dir) for name in names}


def cache_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a built part is cached: ``<data_dir>/real-suite/<name>.safetensors``.

    >>> cache_file("ink", "data").as_posix()
    'data/real-suite/ink.safetensors'
    """
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return root / FOLDER / f"{name}.safetensors"


def build_part(name: str, size: int = SIZE, data_dir: str | os.PathLike[str] | None = None
               ) -> Part:
    """Build one part afresh (no cache, no pin check): its first `size` digits.

    >>> part = build_part("blur", size=3)
    >>> part.images.shape, part.images.dtype
    ((3, 84, 84), dtype('uint8'))
    >>> bool((build_part("blur", size=5).images[:3] == part.images).all())   # a prefix
    True
    """
    (name,) = _check_parts([name])
    if not 1 <= size <= SIZE:
        raise ValueError(f"size must be in 1..{SIZE}, got {size}")
    if name == "font":
        return _font_part(size)
    images, labels = read_split("mnist", "test", data_dir)
    index = _subset(name, len(images))[:size]
    digits, labels = images[index], labels[index].astype(np.int64)
    make = _drawn if name == "drawn" else _photo(name)
    pictures = [make(d, _rng(name, i)) for i, d in enumerate(digits)]
    return Part(np.stack(pictures), labels)


def digest(part: Part) -> str:
    """SHA-256 (hex) of a part: its shapes, then its images' and labels' bytes."""
    h = hashlib.sha256()
    h.update(json.dumps([list(part.images.shape), list(part.labels.shape)]).encode())
    h.update(np.ascontiguousarray(part.images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(part.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _check_parts(parts: list[str] | tuple[str, ...] | None) -> list[str]:
    names = list(PARTS) if parts is None else list(parts)
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise ValueError(f"unknown suite part(s) {', '.join(map(repr, unknown)) or '(none)'}; "
                         f"parts: {', '.join(PARTS)}")
    return names


def _subset(name: str, total: int) -> np.ndarray:
    """The test digits of an MNIST part: a fixed permutation, cut into disjoint slices."""
    k = MNIST_PARTS.index(name)
    order = np.random.default_rng(SEED).permutation(total)
    return order[k * SIZE:(k + 1) * SIZE]


def _rng(name: str, i: int) -> np.random.Generator:
    return np.random.default_rng([SEED, PARTS.index(name), i])


# --------------------------------------------------------------------------- the cache
def _cached(name: str, path: Path, data_dir: str | os.PathLike[str] | None) -> Part:
    """The part from its cache file if it is there and intact, else built, checked against
    its pin and cached."""
    if path.is_file():
        part = _read(path)
        if part is not None and digest(part) == PINS.get(name):
            return part
    part = build_part(name, SIZE, data_dir)
    _check_pin(name, part)
    try:
        atomic.write_bytes(path, save({"images": part.images, "labels": part.labels},
                                      metadata={"part": name, "version": str(VERSION)}))
    except OSError as e:
        raise SuiteError(f"{path}: cannot cache the suite part {name!r} ({e.strerror or e}); "
                         "point --data-dir (or $LENET_DATA_DIR) at a writable folder") from None
    return part


def _read(path: Path) -> Part | None:
    """A cached part, or None where the file is unreadable (it is then built again)."""
    try:
        tensors = load(path.read_bytes())
        return Part(tensors["images"], tensors["labels"])
    except (OSError, SafetensorError, KeyError, ValueError):
        return None


def _check_pin(name: str, part: Part) -> None:
    got, want = digest(part), PINS.get(name)
    if got != want:
        raise SuiteError(
            f"real-input suite part {name!r}: built with SHA-256 {got[:16]}..., pinned "
            f"{(want or 'none')[:16]}...; the suite is pinned for {PINNED_WITH} (Pillow's "
            "resampling and JPEG encoder make its pixels), so numbers measured on this build "
            "would not compare; install those versions (see pyproject.toml)")


# --------------------------------------------------------------------------- photo parts
def _photo(style: str) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def make(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _gray(render(digit, style, rng, SCALE))
    return make


def _gray(rgb: np.ndarray) -> np.ndarray:
    """RGB -> grayscale as lenet's preprocessing makes it (Pillow's "L")."""
    return np.asarray(Image.fromarray(rgb, mode="RGB").convert("L"), dtype=np.uint8)


# --------------------------------------------------------------------------- font part
def glyphs() -> tuple[np.ndarray, list[dict[str, str]]]:
    """The shipped font glyphs: uint8 (fonts, 10, 28, 28) MNIST-style, and each font's name,
    Debian package and SHA-256 (see ``benchmarks/make_glyphs.py``).

    >>> g, fonts = glyphs()
    >>> g.shape[1:], len(fonts) == len(g)
    ((10, 28, 28), True)
    """
    data = resources.files("lenet.data").joinpath("glyphs.safetensors").read_bytes()
    with_meta = _metadata(data)
    return load(data)["glyphs"], json.loads(with_meta["fonts"])


def _metadata(data: bytes) -> dict[str, str]:
    """A safetensors file's ``__metadata__`` (its JSON header's)."""
    n = int.from_bytes(data[:8], "little")
    return dict(json.loads(data[8:8 + n]).get("__metadata__", {}))


def _font_part(size: int) -> Part:
    g, _ = glyphs()
    images, labels = [], []
    for i in range(size):
        rng = _rng("font", i)
        label, font = i % 10, int(rng.integers(len(g)))
        digit = _vary(g[font, label], rng)
        images.append(_gray(render(digit, str(rng.choice(STYLES)), rng, SCALE)))
        labels.append(label)
    return Part(np.stack(images), np.array(labels, dtype=np.int64))


def _vary(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A glyph as one writer might make it: size, width, slant, rotation, position and stroke
    width drawn at random, within what MNIST's own digits show."""
    forward = affine_map(scale=rng.uniform(0.8, 1.1), squeeze=rng.uniform(0.85, 1.15),
                         shear=rng.uniform(-0.3, 0.3), rotate=rng.uniform(-10.0, 10.0),
                         shift_x=rng.uniform(-2.0, 2.0), shift_y=rng.uniform(-1.5, 1.5))
    x = warp(torch.from_numpy(glyph.copy())[None], forward)
    x = stroke(x, rng.uniform(-0.3, 0.8))
    return np.clip(np.rint(x[0].numpy()), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- drawn part
def _drawn(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit as the page's pad gets it from a mouse: its skeleton traced with a round pen
    PEN px wide, black on white, the digit 120-230 px tall somewhere on the 280 px pad; kept
    at half resolution (the preprocessing scales it to 20 px either way)."""
    big = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC))
    ys, xs = np.nonzero(thin(big >= 100))
    if len(ys) == 0:  # no ink at all (never in MNIST): a blank pad
        return np.full((PAD // 2, PAD // 2), 255, np.uint8)
    height = rng.uniform(120.0, 230.0)
    zoom = height / max(float(ys.max() - ys.min()), 1.0)
    angle = np.radians(rng.uniform(-8.0, 8.0))
    c, s = np.cos(angle), np.sin(angle)
    py, px = (ys - ys.mean()) * zoom, (xs - xs.mean()) * zoom
    py, px = c * py - s * px, s * py + c * px
    margin = PEN + 4
    cy = rng.uniform(min(margin - py.min(), PAD / 2), max(PAD - margin - py.max(), PAD / 2))
    cx = rng.uniform(min(margin - px.min(), PAD / 2), max(PAD - margin - px.max(), PAD / 2))
    pen = PEN * rng.uniform(0.9, 1.1)  # pressure: a stylus's varies, a mouse's is 22
    return _pen(np.stack([py + cy, px + cx], axis=1) / 2, pen / 2, PAD // 2)


def _pen(points: np.ndarray, width: float, side: int) -> np.ndarray:
    """uint8 (side, side) white pad with a round pen of `width` px put down at every point
    (y, x): coverage from the distance to the nearest point, anti-aliased over one pixel."""
    r = width / 2
    cover = np.zeros((side, side), np.float32)
    reach = int(np.ceil(r + 1))
    for y, x in points:
        y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 2, side)
        x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 2, side)
        if y0 >= y1 or x0 >= x1:
            continue
        gy, gx = np.ogrid[y0:y1, x0:x1]
        dist = np.sqrt((gy + 0.5 - y) ** 2 + (gx + 0.5 - x) ** 2)
        np.maximum(cover[y0:y1, x0:x1], np.clip(r + 0.5 - dist, 0.0, 1.0),
                   out=cover[y0:y1, x0:x1])
    return np.rint(255.0 * (1.0 - cover)).astype(np.uint8)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: a boolean (H, W) shape worn down to a 1 px skeleton.

    >>> bar = np.zeros((9, 12), bool); bar[3:6, 2:10] = True   # 3 px thick
    >>> thin(bar).sum(axis=0).tolist()                          # one pixel a column
    [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    """
    img = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in _NEIGHBOURS]
            # p2..p9 clockwise from north; b: ink neighbours, a: 0->1 transitions round them
            b = sum(p)
            a = sum((p[k] == 0) & (p[(k + 1) % 8] == 1) for k in range(8))
            if step == 0:
                c1, c2 = p[0] * p[2] * p[4], p[2] * p[4] * p[6]
            else:
                c1, c2 = p[0] * p[2] * p[6], p[0] * p[4] * p[6]
            drop = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & (c1 == 0) & (c2 == 0)
            if drop.any():
                img[drop] = 0
                changed = True
    return img[1:-1, 1:-1].astype(bool)


_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
