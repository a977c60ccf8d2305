"""`lenet evaluate` (and `lenet report`'s flags) on the command line."""

from __future__ import annotations

import json

import pytest

from tests.analysis.helpers import TEST_SUBSET, run_cli


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
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # 500 digits: the weak test MLP misses hundreds of the 10,000, and the gallery of every
    # miss, not the point here, would take most of this test's time.
    weights = str(runs["mlp"].run_dir / "model.safetensors")
    text = run_cli(["evaluate", weights, "--test-subset", "500"])
    # A weights file has no run dir: no PNG anywhere unasked (the current dir stays empty),
    # and the output says how to get them.
    assert list(cwd.iterdir()) == []
    assert "no figures written" in text and "--out DIR" in text
    run_cli(["evaluate", weights, "--test-subset", "500", "--out", "figs"])
    assert sorted(p.name for p in (cwd / "figs").iterdir()) == ["confusion.png",
                                                                      "misclassified.png"]


def test_cli_evaluate_flags(tmp_path) -> None:
    """--out is the old spelling of --run-dir, accepted but not shown; --device is auto."""
    from tests.analysis.helpers import parser

    p = parser()
    old = p.parse_args(["evaluate", "run", "--out", str(tmp_path)])
    assert old.run_dir == str(tmp_path)
    assert p.parse_args(["evaluate", "run"]).device == "auto"
    assert p.parse_args(["report", "run"]).device == "auto"
    assert p.parse_args(["evaluate", "run", "--test-subset", "run"]).test_subset is None
    with pytest.raises(SystemExit):
        p.parse_args(["evaluate", "run", "--test-subset", "-1"])


def test_cli_evaluate_help_shows_run_dir_not_out(capsys) -> None:
    from tests.analysis.helpers import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--run-dir DIR" in text and "--out" not in text


def test_cli_evaluate_reject(tiny_run, capsys) -> None:
    """`lenet evaluate RUN --reject [PCT]`: the rejection for that error, on the digits
    evaluated, printed after today's report and in the JSON."""
    from lenet.analysis.evaluate import evaluate_detailed, load, rejection_at
    from lenet.cli import main

    run = str(tiny_run.run_dir)
    ev = evaluate_detailed(load(run))  # the run's own 2,000 test digits
    assert ev.scores is not None
    expected = rejection_at(ev.scores, ev.labels, 0.5)
    assert main(["evaluate", run, "--test-subset", "run", "--no-plots", "--reject"]) == 0
    text = capsys.readouterr().out
    assert "confusion matrix" in text  # today's report is still there
    line = text.rstrip().splitlines()[-1]
    if expected is None:
        assert line.startswith("rejection for 0.5 % error: unreachable")
    else:
        assert line == (f"rejection for 0.5 % error: {expected:.2f} % of the test digits "
                        f"({round(expected * 20):,} of 2,000, least confident first)")
    assert main(["evaluate", run, "--test-subset", "run", "--no-plots", "--json",
                 "--reject", "2"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["rejection"] == {"target_error": 2.0,
                              "rejected_percent": rejection_at(ev.scores, ev.labels, 2.0)}
    assert main(["evaluate", run, "--no-plots", "--json", "--test-subset", "run"]) == 0
    assert "rejection" not in json.loads(capsys.readouterr().out)  # only when asked


def test_cli_evaluate_checks_the_plot_folder_before_evaluating(tmp_path, monkeypatch,
                                                               capsys) -> None:
    from lenet.analysis.figures import evaluation_report as evaluation
    from lenet.cli import main

    def evaluated(*args, **kwargs):
        raise AssertionError("evaluated before checking the output folder")

    monkeypatch.setattr(evaluation, "evaluation_dict", evaluated)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(blocker / "plots")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lenet: error: cannot write {blocker / 'plots' / 'confusion.png'}")
    assert "--no-plots" in err


def test_cli_evaluate_reject_takes_a_percentage() -> None:
    from tests.analysis.helpers import parser

    p = parser()
    assert p.parse_args(["evaluate", "run", "--reject"]).reject == 0.5
    assert p.parse_args(["evaluate", "run", "--reject", "1.5"]).reject == 1.5
    assert p.parse_args(["evaluate", "run"]).reject is None
    for bad in ("100", "-1", "half"):
        with pytest.raises(SystemExit):
            p.parse_args(["evaluate", "run", "--reject", bad])


def test_cli_evaluate_suite_real(monkeypatch, capsys, mnist_ready) -> None:
    """`lenet evaluate WEIGHTS --suite real [--parts ...] [--json]`: one row a part and the
    mean (small parts here; tests/data/test_suites.py checks the full, pinned build)."""
    from lenet.cli import main
    from lenet.data.suites import build_part
    from lenet.inference import suites

    asked = []

    def small(parts, data_dir):
        asked.append(parts)
        return {name: build_part(name, size=12) for name in parts or ("ink", "font")}

    monkeypatch.setattr(suites, "real_suite", small)
    assert main(["evaluate", "lenet5", "--suite", "real"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "real-input suite: lenet5" and rows[2].startswith("ink ")
    assert rows[3].startswith("font ") and rows[-1].startswith("mean ")
    assert main(["evaluate", "--weights", "lenet5-1998", "--suite", "real", "--parts",
                 "blur,drawn", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert asked == [None, ["blur", "drawn"]]
    assert [p["part"] for p in r["parts"]] == ["blur", "drawn"] and r["weights"] == "lenet5-1998"
    assert all(p["total"] == 12 and 0 <= p["errors"] <= 12 for p in r["parts"])
    assert main(["evaluate", "lenet5", "--parts", "ink"]) == 2
    assert "--parts needs --suite real" in capsys.readouterr().err
    assert main(["evaluate", "lenet5-sigmoid", "--suite", "real"]) == 2
    assert "digits 0-9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "lenet5", "--suite", "real", "--parts", "ink,photos"])
