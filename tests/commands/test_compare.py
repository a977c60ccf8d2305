"""`lenet compare` on the command line."""

from __future__ import annotations

from tests.analysis.helpers import run_cli


def test_cli_compare(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_cli(["compare", str(runs["lenet5"].run_dir), str(runs["mlp"].run_dir),
                   "--out", "cmp.png"])
    assert "best val" in out and (tmp_path / "cmp.png").is_file()


def test_cli_compare_writes_no_png_unasked(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_cli(["compare", str(runs["lenet5"].run_dir), str(runs["mlp"].run_dir)])
    assert "best val" in out and "not drawn (pass --out FILE.png" in out
    assert list(tmp_path.iterdir()) == []
    assert not list(runs["lenet5"].run_dir.glob("compare*.png"))
