"""The 1998 paper's invariance claims, measured: test accuracy as a function of one distortion.

Section III of LeCun et al. (1998) argues that LeNet-5's local receptive fields, shared weights
and subsampling make it robust to shifts, scaling, rotation, squeezing, stroke width and noise,
and that a fully connected network is not. Here each distortion is applied to every test digit
(uint8 28x28, before the model's own preprocessing) at the values of a grid, and the accuracy
is measured at each value: one curve per distortion and model.

The distortions, each with its identity value (which returns the digits unchanged, exactly):

- ``rotation`` (degrees, 0): counter-clockwise as seen on screen, about the image centre;
- ``scale`` (factor, 1): both axes, about the centre; above 1 the digit grows;
- ``shift`` (pixels, 0): digit *i* of the set moves by the amount right, down, left or up for
  ``i % 4`` = 0, 1, 2 or 3: every direction equally often, the same for every model and run;
- ``squeeze`` (factor, 1): the width only; below 1 the digit is narrower;
- ``shear`` (k, 0): horizontal, ``x' = x + k y`` with y downwards: k > 0 moves the bottom right;
- ``stroke`` (pixels, 0): grey-level dilation (> 0) or erosion (< 0) of the ink: 3x3 max- or
  min-pools, one per pixel, and a blend of two for a fraction
  (:func:`lenet.data.geometry.stroke`);
- ``gaussian`` (sigma in grey levels, 0): additive Gaussian noise, clipped to 0..255;
- ``salt-pepper`` (fraction, 0): that fraction of the pixels set to 0 or 255, half each.

Every distortion is one of :mod:`lenet.data.geometry`'s: the geometric ones are one affine map
per digit, warped as training's distortions are (bilinear, zero, the background, outside the
field). Everything runs on the model's device, a batch at a time; the noise comes from a
``torch.Generator`` seeded from (seed, kind, value), so a result is the same on every run with
the same seed and device, whichever kinds are measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet import data
from lenet.console import Log, silent
from lenet.data import geometry
from lenet.data.geometry import affine_map, warp
from lenet.errors import ConfigError, LenetError
from lenet.models import eval_mode, weights
from lenet.models.weights import WEIGHTS_NAME
from lenet.runtime.device import pick
from lenet.runtime.threads import default_threads, threads
from lenet.storage import atomic, rundir

RESULT_NAME = rundir.ROBUSTNESS  # what `lenet robustness` writes and `lenet report` shows
BATCH_SIZE = 256  # fastest on a CPU: a batch's feature maps stay in the cache
SIDE = 28


class RobustnessError(LenetError):
    """A robustness.json cannot be read back."""


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # axis label
    identity: float  # the value that leaves a digit unchanged


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("rotation", "rotation (degrees, counter-clockwise)", 0.0),
    Kind("scale", "scale (factor)", 1.0),
    Kind("shift", "shift (pixels; right, down, left, up in turn)", 0.0),
    Kind("squeeze", "squeeze (width factor)", 1.0),
    Kind("shear", "horizontal shear k (x' = x + k y)", 0.0),
    Kind("stroke", "stroke width (pixels; < 0 erode, > 0 dilate)", 0.0),
    Kind("gaussian", "Gaussian noise (sigma, grey levels)", 0.0),
    Kind("salt-pepper", "salt-and-pepper noise (fraction of pixels)", 0.0),
)}


def _steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = round((stop - start) / step)
    return tuple(float(round(start + i * step, 6)) for i in range(n + 1))


# 7 to 9 points each, identity included: 64 points, 57 evaluations (the identity is shared);
# sized to take under a minute for one model on the 10,000 MNIST test digits on 2 CPU cores.
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "rotation": _steps(-60, 60, 15),
    "scale": _steps(0.5, 1.5, 0.125),
    "shift": (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0),
    "squeeze": _steps(0.5, 1.5, 0.125),
    "shear": _steps(-0.6, 0.6, 0.2),
    "stroke": (-1.0, -0.75, -0.5, -0.25, 0.0, 0.5, 1.0, 1.5, 2.0),
    "gaussian": _steps(0, 192, 32),
    "salt-pepper": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4),
}

Curves = dict[str, list[tuple[float, float]]]


# --------------------------------------------------------------------------- distortions
def _copy(images: torch.Tensor) -> torch.Tensor:
    # Always a new tensor: a model's preprocessing scales its input in place.
    return images.to(torch.float32, copy=True)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    return _copy(images) if degrees == 0 else warp(images, affine_map(rotate=degrees))


def scale(images: torch.Tensor, factor: float) -> torch.Tensor:
    return _copy(images) if factor == 1 else warp(images, affine_map(scale=factor))


def squeeze(images: torch.Tensor, factor: float) -> torch.Tensor:
    """The width only (the sliders' squeeze keeps the area: width times q, height over q)."""
    if factor == 1:
        return _copy(images)
    return warp(images, torch.tensor([[factor, 0.0, 0.0], [0.0, 1.0, 0.0]]))


def shear(images: torch.Tensor, k: float) -> torch.Tensor:
    return _copy(images) if k == 0 else warp(images, affine_map(shear=k))


DIRECTIONS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))  # right, down, left, up


def shift(images: torch.Tensor, pixels: float, start: int = 0) -> torch.Tensor:
    """Digit ``start + i`` moves `pixels` in direction ``DIRECTIONS[(start + i) % 4]``."""
    if pixels == 0:
        return _copy(images)
    which = (torch.arange(len(images)) + start) % len(DIRECTIONS)
    moves = torch.tensor(DIRECTIONS)[which] * pixels
    return warp(images, affine_map(shift_x=moves[:, 0], shift_y=moves[:, 1]))


def distort(kind: str, images: torch.Tensor, value: float, *, start: int = 0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """`images` (uint8 or float (B, 28, 28), 0..255) under distortion `kind` at `value`, as a
    new float tensor; `start` is the index of ``images[0]`` in the whole set (for ``shift``)."""
    geometric: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
        "rotation": rotate, "scale": scale, "squeeze": squeeze, "shear": shear,
        "stroke": geometry.stroke}
    if kind in geometric:
        return geometric[kind](images, value)
    if kind == "shift":
        return shift(images, value, start)
    if kind == "gaussian":
        return geometry.gaussian(images, value, generator)
    if kind == "salt-pepper":
        return geometry.salt_pepper(images, value, generator)
    raise ConfigError(f"unknown distortion {kind!r}; choose from {', '.join(KINDS)}")


# --------------------------------------------------------------------------- measuring
def select(only: Sequence[str] | None = None,
           grid: Mapping[str, Sequence[float]] | None = None) -> dict[str, tuple[float, ...]]:
    """The grid restricted to the kinds in `only` (all when None or empty), in KINDS order."""
    grid = DEFAULT_GRID if grid is None else grid
    unknown = [k for k in only or () if k not in KINDS]
    if unknown:
        raise ConfigError(f"--only: unknown distortion {unknown[0]!r}; choose from "
                          f"{', '.join(KINDS)}")
    return {k: tuple(float(v) for v in grid[k]) for k in KINDS
            if k in grid and (not only or k in only)}


def _seed(seed: int, kind: str, value: float) -> int:
    """A generator seed of its own per (seed, kind, value): independent of what else runs."""
    return (seed * 1_000_003 + zlib.crc32(f"{kind}={value!r}".encode())) % 2**63


@dataclass
class _Data:
    model: nn.Module
    preprocessing: Callable[[torch.Tensor], torch.Tensor]
    images: torch.Tensor  # on the device
    labels: torch.Tensor
    batch_size: int


@torch.inference_mode()
def _accuracy(d: _Data, kind: str | None, value: float, seed: int) -> float:
    """Accuracy on every digit of `d` under `kind` at `value` (None: undistorted)."""
    device = d.images.device
    generator = torch.Generator(device=device)
    generator.manual_seed(_seed(seed, kind or "", value))
    correct = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(d.images), d.batch_size):
        x = d.images[i:i + d.batch_size]
        x = _copy(x) if kind is None else distort(kind, x, value, start=i, generator=generator)
        scores = d.model(d.preprocessing(x))
        correct += (scores.argmax(1) == d.labels[i:i + d.batch_size]).sum()
    return int(correct) / len(d.images)


def measure(model: nn.Module, preprocessing: Callable[[torch.Tensor], torch.Tensor],
            images: torch.Tensor, labels: torch.Tensor,
            grid: Mapping[str, Sequence[float]] = DEFAULT_GRID,
            device: str | torch.device = "cpu", seed: int = 0,
            batch_size: int = BATCH_SIZE) -> Curves:
    """Accuracy of `model` on `images` (uint8 (N, 28, 28)) and `labels` under each distortion
    of `grid`: kind -> [(value, accuracy), ...]. `preprocessing` turns 0..255 digits into the
    model's input (a weights file's ``meta.preprocessing``). The model is moved to `device` and
    evaluated in eval mode (its training mode is restored after)."""
    if len(images) == 0 or len(images) != len(labels):
        raise ConfigError(f"robustness needs as many labels as digits, at least one "
                          f"(got {len(images)} digits, {len(labels)} labels)")
    device = torch.device(device)
    d = _Data(model.to(device), preprocessing, images.to(device), labels.to(device), batch_size)
    with eval_mode(model), _free_cpu_threads(device):
        return _curves(d, grid, seed)


def _free_cpu_threads(device: torch.device) -> contextlib.AbstractContextManager[int]:
    """As many intra-op threads as there are free cores, for the duration (lenet.runtime.threads):
    on 2 quiet cores two threads run the default grid in 18-24 s against 30 s for one, but
    beside a busy job two threads took 183 s against 48 s for one (lenet5, 10,000 digits, AMD
    EPYC)."""
    return threads(default_threads() if device.type == "cpu" else None)


def _curves(d: _Data, grid: Mapping[str, Sequence[float]], seed: int) -> Curves:
    clean: float | None = None
    curves: Curves = {}
    for kind, values in grid.items():
        if kind not in KINDS:
            raise ConfigError(f"unknown distortion {kind!r}; choose from {', '.join(KINDS)}")
        points = []
        for value in values:
            if value == KINDS[kind].identity:  # unchanged digits: measured once for all kinds
                clean = _accuracy(d, None, 0.0, seed) if clean is None else clean
                points.append((float(value), clean))
            else:
                points.append((float(value), _accuracy(d, kind, float(value), seed)))
        curves[kind] = points
    return curves


# --------------------------------------------------------------------------- runs and files
def _labels(names: list[str], paths: list[Path]) -> list[str]:
    """Each model's name, with its run folder's (or file's) name where names repeat."""
    where = [p.parent.name if p.name == WEIGHTS_NAME else p.name for p in paths]
    return [n if names.count(n) == 1 else f"{n} ({w})"
            for n, w in zip(names, where, strict=True)]


def measure_paths(paths: Sequence[str | os.PathLike[str]], *, only: Sequence[str] | None = None,
                  limit: int = 0, device: str = "auto", seed: int = 0,
                  data_dir: str | None = None, grid: Mapping[str, Sequence[float]] | None = None,
                  log: Log = silent) -> dict[str, Any]:
    """Load each run directory or weights file and :func:`measure` it on the first `limit`
    digits (0: all) of its own dataset's test set. A JSON-able result (see :data:`RESULT_NAME`).
    """
    chosen = select(only, grid)
    if limit < 0:
        raise ConfigError(f"--limit {limit}: expected 0 (every test digit) or more")
    dev = pick(device)
    loaded = [(weights.resolve_path(p), *weights.load_model(p, dev)) for p in paths]
    tests: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    labels = _labels([meta.model for _, _, meta in loaded], [p for p, _, _ in loaded])
    models = []
    for label, (path, model, meta) in zip(labels, loaded, strict=True):
        if meta.dataset not in tests:
            x, y = data.load(meta.dataset, "test", data_dir=data_dir)
            tests[meta.dataset] = (x[:limit], y[:limit]) if limit else (x, y)
        x, y = tests[meta.dataset]
        t0 = time.perf_counter()
        curves = measure(model, meta.preprocessing, x, y, chosen, dev, seed)
        seconds = time.perf_counter() - t0
        log(f"{label}: {sum(map(len, curves.values()))} points on {len(x):,} digits in "
            f"{seconds:.1f}s")
        models.append({"name": meta.model, "label": label, "path": str(path),
                       "dataset": meta.dataset, "digits": len(x), "seconds": round(seconds, 3),
                       "curves": {k: [list(p) for p in v] for k, v in curves.items()}})
    return {"seed": seed, "device": str(dev), "limit": limit,
            "kinds": {k: {"label": KINDS[k].label, "identity": KINDS[k].identity,
                          "values": list(v)} for k, v in chosen.items()},
            "models": models}


def write_result(result: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    return atomic.write_text(Path(folder) / RESULT_NAME, json.dumps(result, indent=1) + "\n")


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A robustness.json written by :func:`write_result`, checked enough to be drawn."""
    fix = "run `lenet robustness` again to rewrite it"
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        kinds, models = result["kinds"], result["models"]
        if not models or not all(isinstance(k["label"], str) and isinstance(k["identity"], float)
                                 for k in kinds.values()):
            raise ValueError("no models, or a kind without label and identity")
        for m in models:
            if (not isinstance(m["label"], str) or not isinstance(m["digits"], int)
                    or set(m["curves"]) - set(kinds)):
                raise ValueError("a model's curves do not match the kinds")
            for points in m["curves"].values():
                if not all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
                           for p in points):
                    raise ValueError("a curve holds something other than (value, accuracy)")
    except OSError as e:
        raise RobustnessError(f"{path}: cannot read it ({e.strerror}); {fix}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise RobustnessError(f"{path}: not a robustness result ({e!s:.100}); {fix}") from None
    return result


def format_table(result: Mapping[str, Any]) -> str:
    """Per kind, a row of values and one row of accuracies (%) per model."""
    models = result["models"]
    width = max(12, *(len(m["label"]) for m in models))
    blocks = []
    for kind, info in result["kinds"].items():
        values = info["values"]
        cells = [f"{v:g}" for v in values]
        w = max(5, *(len(c) for c in cells))
        lines = [f"{kind:<{width}}  " + " ".join(c.rjust(w) for c in cells)]
        for m in models:
            accs = [f"{100 * a:.1f}" for _, a in m["curves"][kind]]
            lines.append(f"{m['label']:<{width}}  " + " ".join(a.rjust(w) for a in accs))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
