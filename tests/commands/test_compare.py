"""`lenet compare` on the command line."""

from __future__ import annotations

from tests.analysis.helpers import run_cli


def test_cli_compare(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_cli(["compare", str(runs["lenet5"].run_dir), str(runs["mlp"].run_dir),
                   "--out", "cmp.png"])
    assert "best val" in out and (tmp_path / "cmp.png").is_file()
