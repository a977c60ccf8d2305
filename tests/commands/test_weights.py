"""`lenet weights` and the `--weights NAME|RUN_DIR|FILE` vocabulary of the other commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lenet.models import get_weights, list_pretrained
from tests.commands.cli import lenet


def test_weights_list() -> None:
    out = lenet("weights", "list").stdout
    for name in list_pretrained():
        assert name in out and f"{get_weights(name).test_accuracy:.4f}" in out
    rows = json.loads(lenet("weights", "list", "--json").stdout)
    assert [r["name"] for r in rows] == list_pretrained()


def _digit_png(tmp_path: Path, mnist_test) -> tuple[Path, int]:
    images, labels = mnist_test
    path = tmp_path / "digit.png"
    # Dark ink on white paper, 5x larger: as a scan would be.
    Image.fromarray(255 - images[0]).resize((140, 140)).save(path)
    return path, int(labels[0])


def test_predict_needs_no_run(tmp_path: Path, mnist_test) -> None:
    png, label = _digit_png(tmp_path, mnist_test)
    (row,) = json.loads(lenet("predict", str(png), "--json").stdout)
    assert row["label"] == str(label)
    (row,) = json.loads(lenet("predict", "--weights", "lenet5-tanh", str(png), "--json").stdout)
    assert row["label"] == str(label)


def test_predict_keeps_the_older_spelling(run_dir: Path, tmp_path: Path, mnist_test) -> None:
    png, _ = _digit_png(tmp_path, mnist_test)
    assert lenet("predict", str(run_dir), str(png)).stdout.startswith(f"{png}\t")
    proc = lenet("predict", str(run_dir), check=False)
    assert proc.returncode == 2 and "no image follows it" in proc.stderr


def test_evaluate_takes_a_bundled_name() -> None:
    r = json.loads(lenet("evaluate", "--weights", "lenet5", "--no-plots", "--test-subset",
                         "500", "--json").stdout)
    assert r["model"] == "lenet5" and r["total"] == 500 and r["accuracy"] > 0.97
    proc = lenet("evaluate", "lenet5", "--weights", "lenet5-tanh", "--no-plots", check=False)
    assert proc.returncode == 2 and "two weights given" in proc.stderr
    proc = lenet("evaluate", "--no-plots", check=False)
    assert proc.returncode == 2 and "no weights given" in proc.stderr


def test_an_existing_path_wins_over_a_name(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5").mkdir()  # a folder named like the bundled weights, holding none
    proc = lenet("evaluate", "lenet5", "--no-plots", check=False)
    assert proc.returncode == 2 and "lenet5: no such weights file" in proc.stderr


def test_export_writes_bundled_weights_to_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)
    assert lenet("export", "--weights", "lenet5").stdout == "wrote lenet5.onnx\n"
    assert (tmp_path / "lenet5.onnx").stat().st_size > 200_000
