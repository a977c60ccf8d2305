"""`lenet paper`: row selection, the table, the subcommand, and one real tiny run."""

from __future__ import annotations

import json

import pytest

from lenet import paper
from lenet.config import resolve
from lenet.errors import ConfigError


def test_rows_cover_the_papers_table_and_recipes_resolve() -> None:
    names = [r.name for r in paper.ROWS]
    for name in ("linear", "mlp-300", "mlp-1000", "mlp-300-100", "mlp-500-150", "lenet1",
                 "lenet4", "lenet5", "lenet5-distort", "lenet5-train"):
        assert name in names
    values = {r.name: r.paper_error for r in paper.ROWS}
    assert values["lenet5"] == 0.95 and values["lenet5-distort"] == 0.8
    assert values["mlp-500-150-distort"] == 2.45 and values["lenet5-train"] == 0.35
    for row in paper.ROWS:
        cfg = resolve(row.recipe, {"distort": True if row.distort else None})
        assert cfg.distort == row.distort or row.recipe.endswith("distort")
    sdlm = resolve("lenet5-1998")
    assert (sdlm.optimizer, sdlm.batch_size, sdlm.epochs) == ("sdlm", 1, 20)
    assert sdlm.milestones == [2, 5, 8, 12] and len(sdlm.lr_values) == 5
    assert resolve("lenet5-1998-distort").distort


def test_select_rejects_unknown_rows() -> None:
    assert [r.name for r in paper.select(["lenet1", "linear"])] == ["lenet1", "linear"]
    with pytest.raises(ConfigError, match="unknown paper row"):
        paper.select(["lenet9"])


@pytest.mark.slow
def test_tiny_real_paper_run_writes_markdown_and_json(tmp_path, mnist_ready) -> None:
    report = paper.run(paper.select(["linear"]), seeds=2, epochs=1, train_subset=1000,
                       test_subset=500, device="cpu", run_dir=tmp_path, log=lambda s: None)
    row = report["rows"][0]
    assert row["params"] == 7_850 and len(row["errors"]) == 2
    assert 0 < row["mean"] < 40  # a linear classifier on 1,000 digits: about 15-20 % error
    seeds = [json.loads((tmp_path / "linear" / f"base-seed{k}" / "config.json").read_text())["seed"]
             for k in range(2)]
    assert seeds == [0, 1]  # two seeds, two separate runs of `lenet sweep`
    assert (tmp_path / "linear" / "summary.json").is_file() and row["failed"] == []
    md = (tmp_path / "paper.md").read_text()
    assert "| linear classifier | 12 |" in md and "± " in md
    saved = json.loads((tmp_path / "paper.json").read_text())
    assert saved["rows"][0]["errors"] == row["errors"]


def test_markdown_reports_failed_runs_and_rows_where_every_run_failed() -> None:
    report = {"seeds": 2, "epochs": 1, "train_subset": None, "test_subset": None, "rows": [
        {"method": "LeNet-1 [16x16]", "paper_error": 1.7, "errors": [2.5], "mean": 2.5,
         "std": 0.0, "params": 2_578, "train_seconds": 3.0,
         "failed": [{"seed": 1, "log": "x/train.log", "error": "boom"}]},
        {"method": "LeNet-4", "paper_error": 1.1, "errors": [], "mean": None, "std": None,
         "params": None, "train_seconds": None,
         "failed": [{"seed": 0, "log": "y", "error": "boom"}, {"seed": 1, "log": "z",
                                                              "error": "boom"}]}]}
    md = paper.format_markdown(report)
    assert "| LeNet-1 [16x16] | 1.7 | 2.50 ± 0.00 (1 failed) | 2,578 | 3 s |" in md
    assert "| LeNet-4 | 1.1 | every run failed | – | – |" in md
