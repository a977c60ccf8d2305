"""`lenet robustness RUN_OR_WEIGHTS...`: its files, its table, its JSON and its errors."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.analysis.helpers import png_ok


@pytest.fixture
def cli(monkeypatch):
    """lenet.cli.main with `robustness` among the commands (whether or not NAMES has it yet)."""
    from lenet import commands
    from lenet.cli import main

    if "robustness" not in commands.NAMES:
        monkeypatch.setattr(commands, "NAMES", (*commands.NAMES, "robustness"))
    return main


def test_kind_names_are_the_feature_s_kinds() -> None:
    from lenet.analysis.robustness import KINDS
    from lenet.commands.robustness import KIND_NAMES

    assert tuple(KINDS) == KIND_NAMES


def test_robustness_writes_json_and_pngs_into_the_run_dir_by_default(cli, tiny_run, tmp_path,
                                                                    capsys) -> None:
    run = shutil.copytree(tiny_run.run_dir, tmp_path / "run")
    assert cli(["robustness", str(run), "--only", "rotation", "salt-pepper", "--limit", "100",
                "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    result = json.loads((run / "robustness.json").read_text())
    assert list(result["kinds"]) == ["rotation", "salt-pepper"]
    (model,) = result["models"]
    assert model["label"] == "lenet5" and model["digits"] == 100
    lines = out.splitlines()
    assert lines[0].split() == ["rotation", "-60", "-45", "-30", "-15", "0", "15", "30", "45",
                                "60"]
    assert lines[1].split() == ["lenet5", *[f"{100 * a:.1f}" for _, a in
                                            model["curves"]["rotation"]]]
    assert "accuracy (%) on 100 test digits" in out
    png_ok(run / "robustness.png", (800, 360))
    png_ok(run / "robustness_examples.png")


def test_robustness_json_side_by_side_and_weights_files_default_to_a_folder(
        cli, tiny_run, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    weights = str(tiny_run.run_dir / "model.safetensors")
    assert cli(["robustness", weights, str(tiny_run.run_dir), "--only", "shift", "--limit",
                "60", "--json", "--seed", "2"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["seed"] == 2 and [m["digits"] for m in r["models"]] == [60, 60]
    assert r["models"][0]["curves"] == r["models"][1]["curves"]  # one model, twice
    assert r["files"] == {"json": "robustness/robustness.json",
                          "curves": "robustness/robustness.png",
                          "examples": "robustness/robustness_examples.png"}
    assert json.loads((tmp_path / r["files"]["json"]).read_text())["models"] == r["models"]


def test_an_unwritable_out_is_refused_before_any_measuring(cli, tiny_run, tmp_path, capsys,
                                                            monkeypatch) -> None:
    from lenet.analysis import robustness

    def never(*args, **kwargs):
        raise AssertionError("measured although the output cannot be written")

    monkeypatch.setattr(robustness, "measure_paths", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli(["robustness", str(tiny_run.run_dir), "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lenet: error: cannot write into {blocker}: it exists and is not a "
                          "directory") and err.count("\n") == 1


def test_bad_paths_and_flags_are_one_line_errors(cli, tiny_run, tmp_path, capsys) -> None:
    assert cli(["robustness", str(tiny_run.run_dir), str(tmp_path / "missing"),
                "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing: no such weights file or run directory" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    for bad, said in ((["--only", "blur"], "invalid choice: 'blur'"),
                      (["--limit", "-3"], "must be 0 or more, got -3"),
                      (["--limit", "x"], "expected a whole number, got 'x'")):
        with pytest.raises(SystemExit) as e:
            cli(["robustness", str(tiny_run.run_dir), *bad])
        assert e.value.code == 2
        assert said in capsys.readouterr().err
