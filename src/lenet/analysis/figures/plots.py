"""Every figure lenet draws. Each function returns a ``matplotlib.figure.Figure`` and, given a
path, also writes it there as a PNG (atomically).

Figures are built with matplotlib's object-oriented API only: a bare ``Figure`` with its own Agg
canvas. pyplot is never imported and the global backend never set, so calling these functions in
a notebook or another program leaves its matplotlib state as it was, and no figure is registered
with pyplot's figure manager: a figure nobody keeps is freed like any object (no ``close``
needed in long runs). Sizes are fixed (no tight bounding boxes), so a figure's pixel size is
predictable: ``figsize * DPI``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeAlias, TypeVar

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lenet.storage import atomic

DPI = 100
RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red captions
PathArg: TypeAlias = "str | os.PathLike[str] | None"  # None: draw only, write nothing
MetricsRow: TypeAlias = "Mapping[str, str | float]"  # one metrics.csv row
_Row = TypeVar("_Row", bound="Mapping[str, str | float] | Mapping[str, str]")
Series: TypeAlias = "torch.Tensor | np.ndarray | Sequence[float]"


def _figure(width: float, height: float) -> Figure:
    """A Figure of its own on an Agg canvas: no pyplot, no global backend."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _done(fig: Figure, path: PathArg) -> Figure:
    """Write `fig` as a PNG at `path` (atomically: a reader never sees half a file), if given."""
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
        atomic.write_bytes(path, buf.getvalue())
    return fig


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def mosaic(tiles: np.ndarray, cols: int, normalize: bool = True, gap: int = 1) -> np.ndarray:
    """(N, H, W) tiles -> one 2-D array, `cols` per row, NaN gaps (drawn as background).

    With `normalize`, every tile is scaled to [0, 1] on its own (a feature map's own range).
    """
    n, h, w = tiles.shape
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype=np.float32)
    for i in range(n):
        t = tiles[i].astype(np.float32)
        if normalize:
            lo, hi = float(t.min()), float(t.max())
            t = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = t
    return out


def _cmap(name: str, bad: str = "white") -> Colormap:
    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _off(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _digit_cells(fig: Figure, side: int, images: torch.Tensor) -> Iterator[tuple[int, Axes]]:
    """A side x side grid of axes, the first ``len(images)`` showing one digit each (yielded
    with its index, to be titled); the cells left over are blank."""
    for i, ax in enumerate(fig.subplots(side, side, squeeze=False).flat):
        _off(ax)
        if i >= len(images):
            ax.axis("off")
            continue
        ax.imshow(_np(images[i]), cmap="gray_r", interpolation="nearest")
        yield i, ax


def _integer_ticks(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# --------------------------------------------------------------------------- training curves
def _column(rows: Sequence[MetricsRow], name: str) -> list[float] | None:
    """One metrics.csv column as floats, or None where the run did not record it each epoch."""
    column = []
    for r in rows:
        v = r.get(name)
        if v is None or v == "":
            return None
        column.append(float(v))
    return column


def epoch_number(row: Mapping[str, object]) -> int | None:
    """The row's epoch as a whole number, or None where it is not one (``nan``, ``1.5``: an
    edited or damaged metrics.csv), so that a plot or table leaves a gap there."""
    try:
        value = float(str(row.get("epoch", "")))
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def numbered(rows: Sequence[_Row]) -> list[_Row]:
    """The rows whose epoch is a whole number (:func:`epoch_number`); NaN figures in them stay,
    and are drawn as gaps."""
    return [r for r in rows if epoch_number(r) is not None]


def training_curves(rows: Sequence[MetricsRow], path: PathArg = None,
                    title: str = "") -> Figure:
    """Loss, accuracy and learning rate per epoch, from ``metrics.csv`` rows; a NaN figure, or a
    row whose epoch is not a number, is a gap in its curve."""
    fig = _figure(12, 3.6)
    axes = fig.subplots(1, 3)
    rows = numbered(rows)
    epochs = [int(r["epoch"]) for r in rows]
    marker = "o" if len(epochs) <= 30 else None
    panels = ((("train_loss", "training loss"), ("test_loss", "test loss")),
              (("train_accuracy", "train"), ("val_accuracy", "validation"),
               ("test_accuracy", "test")))
    for ax, columns, heading in zip(axes, panels, ("loss", "accuracy"), strict=False):
        for name, label in columns:
            if (v := _column(rows, name)) is not None:
                ax.plot(epochs, v, marker=marker, label=label)
        ax.set_title(heading)
    if (v := _column(rows, "lr")) is not None:
        axes[2].plot(epochs, v, marker=marker, color="tab:purple")
        finite = [x for x in v if math.isfinite(x)]
        if finite and min(finite) > 0 and max(finite) / min(finite) > 50:
            axes[2].set_yscale("log")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        _integer_ticks(ax)
    for ax in axes[:2]:
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _done(fig, path)


# --------------------------------------------------------------------------- kernels
def _kernel_tiles(w: torch.Tensor) -> tuple[np.ndarray, int]:
    """(out, in, kh, kw) -> tiles and columns: one row per output map when in > 1."""
    w = w.detach().float().cpu()
    if w.dim() == 3:  # (in, kh, kw): one output map's kernels
        return w.numpy(), min(math.ceil(math.sqrt(w.shape[0])), 8)
    out_c, in_c = w.shape[:2]
    if in_c == 1:
        return w[:, 0].numpy(), min(math.ceil(math.sqrt(out_c)), 8)
    return w.reshape(out_c * in_c, *w.shape[2:]).numpy(), in_c


def kernels_before_after(before: torch.Tensor, after: torch.Tensor,
                         path: PathArg = None, title: str = "",
                         labels: tuple[str, str] = ("at initialization", "after training")
                         ) -> Figure:
    """Two mosaics of kernels side by side, each on its own symmetric colour scale
    (blue negative, red positive), so the structure training adds is visible."""
    tiles = [_kernel_tiles(before), _kernel_tiles(after)]
    grids = [mosaic(t, cols, normalize=False) for t, cols in tiles]
    h, w = grids[0].shape
    scale = min(5.0 / max(w, 1), 4.0 / max(h, 1)) * 1.0
    fig = _figure(max(8.0, 2 * w * scale + 2.5), max(3.0, h * scale + 1.2))
    axes = fig.subplots(1, 2)
    cmap = _cmap("RdBu_r", bad="white")
    for ax, grid, label in zip(axes, grids, labels, strict=True):
        vmax = float(np.nanmax(np.abs(grid))) or 1.0
        im = ax.imshow(grid, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{label}  (|w| max {vmax:.3g})")
        _off(ax)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    return _done(fig, path)


# --------------------------------------------------------------------------- feature maps
def feature_maps(image: torch.Tensor, layers: Sequence[tuple[str, torch.Tensor]],
                 path: PathArg = None, title: str = "") -> Figure:
    """The input digit, then one row per layer with all its maps (each on its own scale)."""
    n = len(layers) + 1
    fig = _figure(12, 1.6 + 1.5 * n)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    axes[0].imshow(_np(image), cmap="gray_r", interpolation="nearest")
    axes[0].set_title("input", fontsize=10)
    _off(axes[0])
    for ax, (name, act) in zip(axes[1:], layers, strict=True):
        a = _np(act)
        if a.shape[1] * a.shape[2] == 1:  # 1x1 maps (the 1998 C5): one strip, one scale
            grid = mosaic(a.reshape(1, 1, -1), 1)
        else:
            grid = mosaic(a, min(a.shape[0], 16))
        ax.imshow(grid, cmap=_cmap("viridis", bad="white"), interpolation="nearest",
                  aspect="equal")
        ax.set_title(f"{name}: {a.shape[0]} maps of {a.shape[1]}x{a.shape[2]}", fontsize=10)
        _off(ax)
    if title:
        fig.suptitle(title)
    return _done(fig, path)


# --------------------------------------------------------------------------- digit grids
def prediction_grid(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor,
                    classes: Sequence[str], path: PathArg = None, side: int = 5) -> Figure:
    """side x side test digits titled "pred / true": green when right, red when wrong.

    The arguments in the order of :func:`misclassified_gallery` and :mod:`lenet.analysis.metrics`:
    images, true labels, predictions, class names."""
    fig = _figure(1.4 * side, 1.55 * side)
    for i, ax in _digit_cells(fig, side, images):
        p, t = int(predictions[i]), int(labels[i])
        ax.set_title(f"{classes[p]} / {classes[t]}", color=RIGHT if p == t else WRONG,
                     fontsize=10)
    fig.suptitle("test predictions: pred / true")
    return _done(fig, path)


def sample_grid(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                path: PathArg = None, side: int = 6, title: str = "training samples"
                ) -> Figure:
    fig = _figure(1.3 * side, 1.45 * side)
    for i, ax in _digit_cells(fig, side, images):
        ax.set_title(classes[int(labels[i])], fontsize=10)
    fig.suptitle(title)
    return _done(fig, path)


# --------------------------------------------------------------------------- evaluation
def confusion_heatmap(cm: torch.Tensor, classes: Sequence[str],
                      path: PathArg = None, title: str = "confusion matrix") -> Figure:
    """Counts, coloured by row-normalized rate (so rare classes' mistakes still show)."""
    c = _np(cm)
    rates = c / np.maximum(c.sum(1, keepdims=True), 1)
    n = len(classes)
    fig = _figure(max(6.0, 0.6 * n + 2), max(5.2, 0.55 * n + 1.8))
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45 if max(map(len, classes)) > 2 else 0,
                  ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if c[i, j]:
                ax.text(j, i, str(int(c[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    ax.set_title(title)
    return _done(fig, path)


def misclassified_gallery(images: torch.Tensor, labels: torch.Tensor,
                          predictions: torch.Tensor, confidence: torch.Tensor,
                          classes: Sequence[str], path: PathArg = None,
                          cols: int = 20, title: str = "") -> Figure:
    """Every misclassified digit, captioned "true→predicted (confidence)" (cf. the paper's Fig. 8).

    One image and one text per digit on a single axes, so thousands of digits draw in seconds.
    """
    wrong = (labels != predictions).nonzero().flatten()
    n = len(wrong)
    longest = max((len(c) for c in classes), default=1)
    # Wider cells when the class names are words (Fashion-MNIST), so captions do not overlap.
    cell_w, cell_h, side = max(34, round(1.8 * (2 * longest + 9)) + 4), 42, 28
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    scale = 2.6 / DPI  # inches per data pixel
    fig = _figure(cols * cell_w * scale + 0.2, rows * cell_h * scale + 0.6)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, cols * cell_w)
    ax.set_ylim(rows * cell_h + 14, 0)
    ax.axis("off")
    fig.set_layout_engine(None)
    heading = title or f"{n} misclassified digits: true→predicted (confidence)"
    ax.text(cols * cell_w / 2, 7, heading, ha="center", va="center", fontsize=10)
    if n == 0:
        ax.text(cols * cell_w / 2, 28, "no misclassified digits", ha="center", fontsize=12)
    canvas = np.full((rows * cell_h, cols * cell_w), np.nan, dtype=np.float32)
    for k, i in enumerate(wrong.tolist()):
        r, c = divmod(k, cols)
        y, x = r * cell_h + 2, c * cell_w + (cell_w - side) // 2
        canvas[y:y + side, x:x + side] = _np(images[i]) / 255.0
        caption = (f"{classes[int(labels[i])]}→{classes[int(predictions[i])]} "
                   f"({float(confidence[i]):.2f})")
        ax.text(c * cell_w + cell_w / 2, r * cell_h + 14 + side + 5, caption, ha="center",
                va="center", fontsize=6.5, color=WRONG)
    ax.imshow(canvas, cmap=_cmap("gray_r", bad="white"), vmin=0, vmax=1,
              extent=(0, cols * cell_w, rows * cell_h + 14, 14), interpolation="nearest")
    return _done(fig, path)


def rbf_bitmaps(bitmaps: torch.Tensor, classes: Sequence[str],
                path: PathArg = None) -> Figure:
    """The output RBF units' parameter vectors as images (7x12 bitmaps in the 1998 paper)."""
    b = _np(bitmaps)
    n = b.shape[0]
    fig = _figure(1.1 * n + 0.6, 2.4)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.imshow(b[i], cmap="gray_r", interpolation="nearest")
        ax.set_title(classes[i] if i < len(classes) else str(i), fontsize=10)
        _off(ax)
    fig.suptitle("RBF output bitmaps (the codes each class is matched against)")
    return _done(fig, path)


# --------------------------------------------------------------------------- compare
def accuracy_curves(curves: Sequence[tuple[str, Sequence[int], Sequence[float]]],
                    path: PathArg = None, ylabel: str = "test accuracy") -> Figure:
    """One line per run: (label, epochs, accuracies)."""
    fig = _figure(9, 5.5)
    ax = fig.subplots()
    marker = "o" if max((len(e) for _, e, _ in curves), default=0) <= 30 else None
    for label, epochs, acc in curves:
        ax.plot(list(epochs), list(acc), marker=marker, label=label)
    ax.set_xlabel("epoch")
    _integer_ticks(ax)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    ax.set_title("accuracy per epoch")
    return _done(fig, path)


# --------------------------------------------------------------------------- rejection
def error_vs_rejection(curves: Sequence[tuple[str, Series, Series]], target: float | None = 0.5,
                       path: PathArg = None, title: str | None = None) -> Figure:
    """Error on the digits kept against the percentage rejected (the 1998 paper's Fig. 10),
    one line per (label, rejected %, error %); a dashed line at the `target` error.
    """
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    right = 1.0
    for label, rejected, error in curves:
        x, y = _np(torch.as_tensor(rejected)), _np(torch.as_tensor(error))
        ax.step(x, y, where="post", label=label)
        zero = np.nonzero(y <= 0)[0]
        # Show the curve until it reaches no error, not the long flat tail after it.
        right = max(right, float(x[zero[0]]) * 1.25 if len(zero) else float(x[-1]))
        if target is not None:
            hit = np.nonzero(y <= target * (1 + 1e-12))[0]
            if len(hit):
                ax.plot([x[hit[0]]], [y[hit[0]]], "o", color=ax.lines[-1].get_color())
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1,
                   label=f"{target:g} % error")
    ax.set_xlim(0, min(100.0, right))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("test digits rejected (%), least confident first")
    ax.set_ylabel("error on the digits kept (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "error against rejection (margin between the two best scores)")
    return _done(fig, path)
