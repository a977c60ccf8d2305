"""lenet.analysis.figures.robustness_plots's figures, and the robustness section of report.html."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.analysis.helpers import png_ok


def _result(kinds: list[str], models: list[str]) -> dict:
    from lenet.analysis import robustness as R

    grid = R.select(kinds)
    return {"seed": 0, "device": "cpu", "limit": 0,
            "kinds": {k: {"label": R.KINDS[k].label, "identity": R.KINDS[k].identity,
                          "values": list(v)} for k, v in grid.items()},
            "models": [{"label": m, "name": m, "digits": 10, "curves": {
                k: [[v, 1 - i * 0.1 - j / 50] for j, v in enumerate(vs)]
                for k, vs in grid.items()}} for i, m in enumerate(models)]}


def test_curves_one_panel_per_kind_one_line_per_model(tmp_path) -> None:
    from lenet.analysis.figures.robustness_plots import curves
    from lenet.analysis.robustness import KINDS

    fig = curves(_result(list(KINDS), ["lenet5", "mlp"]), tmp_path / "all.png", title="t")
    png_ok(tmp_path / "all.png", (1600, 680))  # 4 x 2 panels of 4 x 3.2 in, + a title
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == list(KINDS)
    assert all(len(ax.get_lines()) == 3 for ax in shown)  # two models and the identity line
    assert [t.get_text() for t in shown[0].get_legend().get_texts()] == ["lenet5", "mlp"]
    line = shown[0].get_lines()[0]
    assert list(line.get_ydata()) == [100 * (1 - j / 50) for j in range(9)]  # in %
    two = curves(_result(["shift", "stroke"], ["m"]), tmp_path / "two.png")
    png_ok(tmp_path / "two.png", (800, 320))
    assert len([ax for ax in two.axes if ax.get_visible()]) == 2
    assert not (tmp_path / "none.png").exists()
    curves(_result(["shift"], ["m"]))  # no path: draws, writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.png", "two.png"]


def test_examples_show_the_digit_under_every_value(mnist_test, tmp_path) -> None:
    from lenet.analysis.figures.robustness_plots import examples
    from lenet.analysis.robustness import DEFAULT_GRID, KINDS

    digit = torch.from_numpy(mnist_test[0][0].copy())
    fig = examples(digit, DEFAULT_GRID, tmp_path / "ex.png")
    png_ok(tmp_path / "ex.png")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == sum(len(v) for v in DEFAULT_GRID.values())
    cols = max(map(len, DEFAULT_GRID.values()))
    for row, (kind, values) in enumerate(DEFAULT_GRID.items()):
        ax = fig.axes[row * cols + values.index(KINDS[kind].identity)]
        assert ax.get_title() == f"{KINDS[kind].identity:g}"
        assert (ax.images[0].get_array() == digit.numpy()).all(), kind  # the digit itself
        far = fig.axes[row * cols + len(values) - 1].images[0].get_array()
        assert (far != digit.numpy()).any(), kind


def test_the_report_shows_the_curves_when_the_run_has_them(tiny_run, tmp_path) -> None:
    from lenet.analysis import robustness as R
    from lenet.analysis.figures import run_report as report

    run = shutil.copytree(tiny_run.run_dir, tmp_path / "run")
    bare = report.Report(run, run / report.HTML)
    report._robustness(bare)  # no robustness.json: nothing drawn, the section says how
    assert "robustness" not in bare.images
    assert "Not measured" in report._robustness_section(bare)
    R.write_result(R.measure_paths([run], only=["shift"], limit=50), run)
    rep = report.build(run)
    png_ok(rep.images["robustness"], (400, 360))
    section = rep.html.read_text().split('<section id="robustness">')[1].split("</section>")[0]
    assert "data:image/png;base64," in section and "Not measured" not in section
    (run / R.RESULT_NAME).write_text("{}")
    with pytest.raises(R.RobustnessError, match=r"robustness\.json: not a robustness result"):
        report._robustness(bare)
