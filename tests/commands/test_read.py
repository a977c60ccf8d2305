"""`lenet read`: numbers in image files, text and JSON, per-file errors, option checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet import cli
from lenet.data.strings import sample_strings
from lenet.models import create
from lenet.models.readers import publish, reader_meta
from lenet.models.sdnn import SDNN


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist_test) -> tuple[Path, list[str]]:
    """Six 5-digit numbers of MNIST test digits, dark on light at twice the size, and a blank."""
    images, labels = mnist_test
    s = sample_strings(images[:2000], labels[:2000], 6, 5, "wide", np.random.default_rng(2))
    out = tmp_path_factory.mktemp("numbers")
    for i, strip in enumerate(s.images):
        img = Image.fromarray(255 - strip).resize((2 * strip.shape[1], 56))
        img.save(out / f"n{i}.png" if i % 2 else out / f"n{i}.jpg")
    Image.new("L", (200, 60), 255).save(out / "z-blank.png")
    return out, s.texts


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """Reader weights written as `make reader` writes them (an untrained SDNN of lenet5)."""
    sdnn = SDNN.from_classifier(create("lenet5", pretrained=True))
    return publish(sdnn, reader_meta(0.5, {"margin": sdnn.margin}), "tiny",
                   directory=tmp_path_factory.mktemp("reader"))


def test_json_reads_each_file(folder, capsys) -> None:
    out, texts = folder
    rc = cli.main(["read", str(out), "--json", "--method", "components", "--weights", "lenet5"])
    results = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(results) == 7
    numbers = [r for r in results if "z-blank" not in r["file"]]
    by_name = {Path(r["file"]).stem: r for r in numbers}
    right = [by_name[f"n{i}"]["text"] == t for i, t in enumerate(texts)]
    assert sum(right) >= 4, numbers
    blank = next(r for r in results if "z-blank" in r["file"])
    assert blank["text"] == "" and blank["digits"] == [] and not blank["rejected"]
    for r in numbers:
        assert r["method"] == "components" and len(r["digits"]) == len(r["text"])
        width = Image.open(r["file"]).size[0]
        assert all(0 <= d["x0"] < d["x1"] <= width for d in r["digits"])


def test_text_lines_length_pattern_and_weights_file(folder, weights_file, capsys) -> None:
    out, _ = folder
    rc = cli.main(["read", str(out / "n1.png"), str(out / "z-blank.png"), "--length", "5",
                   "--weights", str(weights_file), "--reject", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(lines) == 2
    assert lines[0].startswith(f"{out / 'n1.png'}: ") and "rejected" not in lines[0]
    assert len(lines[0].split(": ")[1].split(" ")[0]) == 5  # five characters, as asked
    assert lines[1] == f"{out / 'z-blank.png'}: no number (1.000)"
    rc = cli.main(["read", str(out / "n1.png"), "--weights", str(weights_file),
                   "--reject", "1", "--pattern", "amount", "--json"])
    (r,) = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["rejected"] and r["text"][-3] == "." and r["file"].endswith("n1.png")
    assert len(r["columns"]) == len(r["path"]) > 0 and len(r["columns"][0]) == 12


def test_bad_files_are_one_line_each_and_exit_1(folder, tmp_path, capsys) -> None:
    out, _ = folder
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((out / "n1.png").read_bytes()[:60])
    page = np.full((300, 400), 255, np.uint8)
    page[40:80, 50:300] = 0
    page[160:200, 50:300] = 0
    Image.fromarray(page).save(tmp_path / "page.png")
    rc = cli.main(["read", str(out / "n1.png"), str(tmp_path / "notes.txt"),
                   str(tmp_path / "cut.png"), str(tmp_path / "page.png"),
                   str(tmp_path / "missing.png"), "--method", "components", "--weights", "lenet5"])
    captured = capsys.readouterr()
    assert rc == 1
    assert len(captured.out.splitlines()) == 1  # n1.png was still read
    err = captured.err
    assert "Traceback" not in err
    assert "notes.txt: not an image" in err
    assert "cut.png: unreadable or truncated" in err
    assert "page.png: found 2 lines of ink" in err
    assert "missing.png: no such file" in err
    assert len([x for x in err.splitlines() if x.startswith("lenet: error")]) == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--pattern", "d{"], "--pattern 'd{'"),
    (["--length", "0"], "--length 0"),
    (["--reject", "1.5"], "--reject 1.5"),
    (["--workers", "0"], "--workers 0"),
    (["--weights", "no-such-reader"], "no-such-reader"),
])
def test_bad_options_exit_2_in_one_line(folder, args, message, capsys) -> None:
    out, _ = folder
    rc = cli.main(["read", str(out / "n1.png"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert len([x for x in err.splitlines() if x.startswith("lenet: error")]) == 1


def test_workers_print_what_one_process_prints(folder, monkeypatch, capsys) -> None:
    from lenet.inference.read import reader

    out, _ = folder
    assert cli.main(["read", str(out), "--workers", "1"]) == 0
    alone = capsys.readouterr().out.splitlines()
    monkeypatch.setattr(reader, "PER_WORKER", 2)  # 7 files: three workers' shares
    assert cli.main(["read", str(out), "--workers", "3"]) == 0
    shared = capsys.readouterr().out.splitlines()
    assert len(shared) == len(alone) == 7
    # The same files, in the same order, read the same (the confidences are summed on one
    # thread a worker, on the free cores' threads alone: their last digit may differ).
    for a, b in zip(shared, alone, strict=True):
        assert a.rsplit(" (", 1)[0] == b.rsplit(" (", 1)[0]
        assert float(a.rsplit("(", 1)[1].split(")")[0]) == pytest.approx(
            float(b.rsplit("(", 1)[1].split(")")[0]), abs=0.0015)
