"""lenet.analysis.figures.plots: figures drawn from plain tensors and rows, without a run."""

from __future__ import annotations

import gc
import inspect
import json
import os
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.analysis.helpers import png_ok

ROOT = Path(__file__).resolve().parents[3]
CLASSES = [str(d) for d in range(10)]


def _rows() -> list[dict[str, str]]:
    return [{"epoch": str(e), "train_loss": str(1 / e), "test_loss": str(1.2 / e),
             "train_accuracy": str(1 - 0.1 / e), "test_accuracy": str(1 - 0.12 / e),
             "val_accuracy": "", "lr": str(0.1 / e)} for e in range(1, 4)]


def _digits(n: int) -> Any:
    import torch

    return torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(n)) * 255


def _case(name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Small synthetic arguments for each public plot function (all but `path`)."""
    import torch

    t = torch.tensor
    g = torch.Generator().manual_seed(0)
    cases: dict[str, Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]] = {
        "training_curves": lambda: ((_rows(),), {"title": "t"}),
        "kernels_before_after": lambda: ((torch.randn(6, 1, 5, 5, generator=g),
                                          torch.randn(6, 1, 5, 5, generator=g)), {"title": "k"}),
        "feature_maps": lambda: ((_digits(1)[0], [("c1", torch.rand(6, 24, 24, generator=g)),
                                                  ("c5", torch.rand(120, 1, 1, generator=g))]),
                                 {}),
        "prediction_grid": lambda: ((_digits(4), t([0, 1, 2, 3]), t([0, 1, 0, 3]), CLASSES),
                                    {"side": 2}),
        "sample_grid": lambda: ((_digits(4), t([0, 1, 2, 3]), CLASSES), {"side": 2}),
        "confusion_heatmap": lambda: ((t([[5, 1, 0], [0, 4, 2], [1, 0, 6]]), CLASSES[:3]), {}),
        "misclassified_gallery": lambda: ((_digits(5), t([0, 1, 2, 3, 4]), t([0, 2, 2, 1, 4]),
                                           t([0.9, 0.6, 0.8, 0.7, 0.99]), CLASSES), {}),
        "rbf_bitmaps": lambda: ((torch.rand(3, 12, 7, generator=g), CLASSES[:3]), {}),
        "accuracy_curves": lambda: (([("a", [1, 2], [0.9, 0.95]), ("b", [1, 2], [0.8, 0.9])],),
                                    {}),
        "error_vs_rejection": lambda: (([("a", [0, 25], [25, 0])],), {}),
    }
    return cases[name]()


PLOT_FUNCTIONS = ["training_curves", "kernels_before_after", "feature_maps", "prediction_grid",
                  "sample_grid", "confusion_heatmap", "misclassified_gallery", "rbf_bitmaps",
                  "accuracy_curves", "error_vs_rejection"]


def test_every_public_plot_function_is_exercised_below() -> None:
    """A new plot function fails here until it is added to the checks of this file."""
    from lenet.analysis.figures import plots

    public = {name for name, f in inspect.getmembers(plots, inspect.isfunction)
              if f.__module__ == plots.__name__ and not name.startswith("_")}
    # mosaic builds an array, not a figure; epoch_number and numbered read metrics rows.
    assert public - {"mosaic", "epoch_number", "numbered"} == set(PLOT_FUNCTIONS)


@pytest.mark.parametrize("name", PLOT_FUNCTIONS)
def test_returns_a_figure_and_writes_only_when_given_a_path(name, tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from lenet.analysis.figures import plots

    args, kwargs = _case(name)
    monkeypatch.chdir(tmp_path)
    fig = getattr(plots, name)(*args, **kwargs)
    assert isinstance(fig, Figure) and fig.axes
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "sub" / f"{name}.png"
    assert isinstance(getattr(plots, name)(*args, path=path, **kwargs), Figure)
    png_ok(path, min_var=5.0)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


@pytest.fixture(scope="module")
def backend_probe() -> dict[str, dict[str, Any]]:
    """Every plot function called in a fresh interpreter whose backend is set to 'svg' (not the
    Agg the figures render with, so a global switch would show): the backend before and after
    each call, whether pyplot was imported by then, and what the call returned."""
    code = (
        "import json, sys, matplotlib\n"
        "from lenet.analysis.figures import plots\n"
        "from tests.analysis.figures.test_plots import PLOT_FUNCTIONS, _case\n"
        "out = {}\n"
        "for name in PLOT_FUNCTIONS:\n"
        "    args, kwargs = _case(name)\n"
        "    before = matplotlib.get_backend()\n"
        "    fig = getattr(plots, name)(*args, **kwargs)\n"
        "    pyplot = 'matplotlib.pyplot' in sys.modules\n"
        "    out[name] = {'before': before, 'after': matplotlib.get_backend(),\n"
        "                 'pyplot': pyplot, 'returned': type(fig).__name__}\n"
        "print(json.dumps(out))\n")
    env = {**os.environ, "MPLBACKEND": "svg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", PLOT_FUNCTIONS)
def test_leaves_the_global_backend_alone_and_never_imports_pyplot(backend_probe, name) -> None:
    r = backend_probe[name]
    assert r["before"] == r["after"] == "svg"
    assert r["pyplot"] is False
    assert r["returned"] == "Figure"


def test_a_figure_nobody_keeps_is_freed() -> None:
    """Nothing (such as pyplot's figure manager) holds on to a figure: long runs do not leak."""
    from lenet.analysis.figures import plots

    ref = weakref.ref(plots.accuracy_curves([("a", [1, 2], [0.9, 0.95])]))
    gc.collect()
    assert ref() is None


def test_rbf_bitmaps_of_the_1998_network(tmp_path) -> None:
    """What docs/rbf-bitmaps.png shows: the ten 7x12 output codes, drawn from the model."""
    from lenet.analysis.figures import plots
    from lenet.models.lenet1998 import LeNet1998

    path = tmp_path / "rbf.png"
    plots.rbf_bitmaps(LeNet1998().rbf_bitmaps(), CLASSES, path)
    png_ok(path, (1160, 240))  # ten 12x7 bitmaps, 1.1 in each


def test_training_curves_skip_what_a_run_did_not_record(tmp_path) -> None:
    """A column missing in some epoch (no validation set, say) is left out, not drawn as 0."""
    from lenet.analysis.figures import plots

    rows = _rows()
    fig = plots.training_curves(rows, tmp_path / "curves.png", "t")
    png_ok(tmp_path / "curves.png", (1200, 360))
    _, accuracy, lr = fig.axes[:3]
    assert [line.get_label() for line in accuracy.lines] == ["train", "test"]
    assert len(lr.lines) == 1
    fig = plots.training_curves([{k: v for k, v in r.items() if k != "lr"} for r in rows],
                                tmp_path / "no-lr.png")
    png_ok(tmp_path / "no-lr.png", (1200, 360))
    assert len(fig.axes[2].lines) == 0


def test_error_vs_rejection_returns_a_figure_and_saves_only_when_asked(tmp_path) -> None:
    import torch
    from matplotlib.figure import Figure

    from lenet.analysis.evaluate import rejection_curve
    from lenet.analysis.figures import plots

    scores = torch.tensor([[0.1, 0.0], [0.0, 0.2], [0.9, 0.0], [0.0, 1.5]])
    curve = rejection_curve(scores, torch.tensor([1, 1, 0, 1]))
    fig = plots.error_vs_rejection([("net", curve.rejected, curve.error)])
    assert isinstance(fig, Figure) and list(tmp_path.iterdir()) == []
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0 and ax.get_ylim()[0] == 0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["net", "0.5 % error"]
    path = tmp_path / "sub" / "rejection.png"
    assert isinstance(plots.error_vs_rejection([("a", [0, 25], [25, 0])], path=path), Figure)
    png_ok(path, (800, 450))


def test_the_digit_grids_take_their_arguments_in_one_order() -> None:
    """images, labels, predictions, classes: in both grids, as in lenet.analysis.metrics."""
    import torch

    from lenet.analysis.figures import plots

    first = ["images", "labels", "predictions"]
    for f in (plots.prediction_grid, plots.misclassified_gallery):
        assert list(inspect.signature(f).parameters)[:3] == first, f.__name__
    # The caption is "pred / true": the labels are the second argument, predictions the third.
    fig = plots.prediction_grid(_digits(1), torch.tensor([3]), torch.tensor([8]), CLASSES, side=1)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["8 / 3"]


def test_metrics_with_nan_are_drawn_with_gaps(tmp_path) -> None:
    """A NaN figure is a gap in its curve; a row whose epoch is not a whole number (NaN, 1.5:
    an edited file) is left out; no ValueError."""
    import math

    from lenet.analysis.figures import plots

    rows = _rows()
    rows[1]["test_accuracy"] = "nan"
    rows[2]["lr"] = "nan"
    odd = [*rows, {**rows[0], "epoch": "nan"}, {**rows[0], "epoch": "1.5"}]
    fig = plots.training_curves(odd, tmp_path / "curves.png")
    png_ok(tmp_path / "curves.png", min_var=5.0)
    test = next(line for line in fig.axes[1].lines if line.get_label() == "test")
    assert list(test.get_xdata()) == [1, 2, 3]
    assert math.isnan(test.get_ydata()[1]) and not math.isnan(test.get_ydata()[0])
    assert [plots.epoch_number(r) for r in odd] == [1, 2, 3, None, None]
