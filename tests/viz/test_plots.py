"""lenet.viz.plots: figures drawn from plain tensors and rows, without a run."""

from __future__ import annotations

from tests.viz.helpers import png_ok


def test_rbf_bitmaps_of_the_1998_network(tmp_path) -> None:
    """What docs/rbf-bitmaps.png shows: the ten 7x12 output codes, drawn from the model."""
    from lenet.models.lenet1998 import LeNet1998
    from lenet.viz import plots

    path = plots.rbf_bitmaps(LeNet1998().rbf_bitmaps(), [str(d) for d in range(10)],
                             tmp_path / "rbf.png")
    png_ok(path, (1160, 240))  # ten 12x7 bitmaps, 1.1 in each


def test_training_curves_skip_what_a_run_did_not_record(tmp_path) -> None:
    """A column missing in some epoch (no validation set, say) is left out, not drawn as 0."""
    from lenet.viz import plots

    rows = [{"epoch": str(e), "train_loss": str(1 / e), "test_loss": str(1.2 / e),
             "train_accuracy": str(1 - 0.1 / e), "test_accuracy": str(1 - 0.12 / e),
             "val_accuracy": "", "lr": str(0.1 / e)} for e in range(1, 4)]
    png_ok(plots.training_curves(rows, tmp_path / "curves.png", "t"), (1200, 360))
    png_ok(plots.training_curves([{k: v for k, v in r.items() if k != "lr"} for r in rows],
                                 tmp_path / "no-lr.png"), (1200, 360))


def test_error_vs_rejection_returns_a_figure_and_saves_only_when_asked(tmp_path) -> None:
    import torch
    from matplotlib.figure import Figure

    from lenet.evaluate import rejection_curve
    from lenet.viz import plots

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
