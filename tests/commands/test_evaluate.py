"""`lenet evaluate` (and `lenet report`'s flags) on the command line."""

from __future__ import annotations

import json

import pytest

from tests.viz.helpers import TEST_SUBSET, run_cli


def test_cli_evaluate(runs, tmp_path, monkeypatch) -> None:
    run_dir = str(runs["lenet5"].run_dir)
    r = json.loads(run_cli(["evaluate", run_dir, "--json", "--run-dir", str(tmp_path / "ev"),
                            "--test-subset", "run"]))
    assert sum(map(sum, r["confusion_matrix"])) == TEST_SUBSET
    assert r["accuracy"] == runs["lenet5"].test.accuracy
    assert (tmp_path / "ev" / "misclassified.png").is_file()
    text = run_cli(["evaluate", str(runs["lenet5"].run_dir / "model.safetensors"),
                    "--no-plots"])  # default: the whole test set
    assert "of 10000)" in text and "confusion matrix" in text and "macro avg" in text
    assert f"on its first {TEST_SUBSET:,} test digits" in text
    monkeypatch.chdir(tmp_path)
    run_cli(["evaluate", str(runs["mlp"].run_dir / "model.safetensors")])
    assert (tmp_path / "confusion.png").is_file()  # a weights file: PNGs in the current dir


def test_cli_evaluate_flags(tmp_path) -> None:
    """--out is the old spelling of --run-dir, accepted but not shown; --device is auto."""
    from tests.viz.helpers import parser

    p = parser()
    old = p.parse_args(["evaluate", "run", "--out", str(tmp_path)])
    assert old.run_dir == str(tmp_path)
    assert p.parse_args(["evaluate", "run"]).device == "auto"
    assert p.parse_args(["report", "run"]).device == "auto"
    assert p.parse_args(["evaluate", "run", "--test-subset", "run"]).test_subset is None
    with pytest.raises(SystemExit):
        p.parse_args(["evaluate", "run", "--test-subset", "-1"])


def test_cli_evaluate_help_shows_run_dir_not_out(capsys) -> None:
    from tests.viz.helpers import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--run-dir DIR" in text and "--out" not in text
