"""Figures of ``lenet robustness``: accuracy against each distortion, one line per model, and
one digit under every distortion of the grid (so that "scale 0.5" has a picture).

As everywhere in :mod:`lenet.analysis.figures.plots`: a bare ``Figure`` on its own Agg canvas
(no pyplot, no global backend), written as a PNG (atomically) only when given a path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from lenet.analysis import robustness
from lenet.analysis.figures import plots

COLS = 4  # panels a row in the curves figure
PANEL = (4.0, 3.2)  # inches per panel
CELL = 0.62  # inches per digit in the examples figure


def curves(result: Mapping[str, Any], path: plots.PathArg = None, title: str = "") -> Figure:
    """A :func:`lenet.analysis.robustness.measure_paths` result (or its robustness.json): per kind,
    the test accuracy (%) against the distortion's value, one line per model; a dotted line marks
    the undistorted value."""
    kinds = result["kinds"]
    rows = max(1, math.ceil(len(kinds) / COLS))
    cols = min(COLS, max(1, len(kinds)))
    fig = plots._figure(PANEL[0] * cols, PANEL[1] * rows + (0.4 if title else 0))
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (kind, info) in zip(axes, kinds.items(), strict=False):
        for m in result["models"]:
            points = m["curves"].get(kind, [])
            ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o",
                    markersize=3.5, label=m["label"])
        ax.axvline(info["identity"], color="0.6", linestyle=":", linewidth=1)
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel(info["label"], fontsize=8)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes):
        if i >= len(kinds):
            ax.set_visible(False)
        elif i % cols == 0:
            ax.set_ylabel("test accuracy (%)")
    if kinds and result["models"]:
        axes[0].legend(fontsize=8, loc="lower center")
    if title:
        fig.suptitle(title)
    return plots._done(fig, path)


def examples(image: torch.Tensor, grid: Mapping[str, Sequence[float]],
             path: plots.PathArg = None, seed: int = 0) -> Figure:
    """One uint8 (28, 28) digit under each distortion (a row) at each value of `grid`."""
    n_cols = max((len(v) for v in grid.values()), default=1)
    fig = plots._figure(1.3 + CELL * n_cols, 0.2 + (CELL + 0.18) * max(1, len(grid)))
    axes = fig.subplots(max(1, len(grid)), n_cols, squeeze=False)
    cmap = plots._cmap("gray_r")
    for row, (kind, values) in zip(axes, grid.items(), strict=False):
        g = torch.Generator().manual_seed(seed)
        for ax, value in zip(row, values, strict=False):
            digit = robustness.distort(kind, image[None], float(value), generator=g)[0]
            ax.imshow(digit.numpy(), cmap=cmap, vmin=0, vmax=255)
            ax.set_title(f"{value:g}", fontsize=7, pad=2)
        for ax in row:
            plots._off(ax)
            if not ax.images:
                ax.set_visible(False)
        row[0].set_ylabel(kind, fontsize=8, rotation=0, ha="right", va="center")
    return plots._done(fig, path)
