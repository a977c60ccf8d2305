"""`lenet predict` on real MNIST digits re-rendered the way people write them: dark ink on light
paper, 3-10x larger, off-centre on a bigger canvas, as PNG, JPEG, RGBA PNG and BMP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet import cli

N = 1000


def _render(digit: np.ndarray, i: int, rng: np.random.Generator, out: Path) -> Path:
    size = int(rng.integers(3 * 28, 10 * 28 + 1))  # scaled up 3-10x
    big = Image.fromarray(255 - digit, "L").resize((size, size), Image.Resampling.BILINEAR)
    w, h = size + int(rng.integers(20, 200)), size + int(rng.integers(20, 200))
    canvas = Image.new("L", (w, h), 255)
    canvas.paste(big, (int(rng.integers(0, w - size)), int(rng.integers(0, h - size))))
    kind = i % 4
    if kind == 0:
        path = out / f"d{i:04d}.png"
        canvas.convert("RGB").save(path)
    elif kind == 1:
        path = out / f"d{i:04d}.jpg"
        canvas.convert("RGB").save(path, quality=90)
    elif kind == 2:  # ink as alpha over transparent pixels
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., 3] = 255 - np.asarray(canvas)
        path = out / f"d{i:04d}.png"
        Image.fromarray(rgba).save(path)
    else:
        path = out / f"d{i:04d}.bmp"
        canvas.save(path)
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, mnist_test) -> tuple[Path, np.ndarray, np.ndarray]:
    images, labels = mnist_test
    out = tmp_path_factory.mktemp("rendered")
    rng = np.random.default_rng(5)
    for i in range(N):
        _render(images[i], i, rng, out)
    return out, images[:N], labels[:N]


def test_rerendered_digits_are_recognized(run_dir, rendered, tmp_path, capsys):
    from lenet.inference.predict import Predictor

    folder, images, labels = rendered
    original_acc = float((Predictor.load(run_dir).scores(images).argmax(1) == labels).mean())
    seen_dir = tmp_path / "seen"
    rc = cli.main(["predict", str(run_dir), str(folder), "--json", "--top-k", "3",
                   "--save-preprocessed", str(seen_dir)])
    assert rc == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == N and all("error" not in r for r in results)
    by_index = {int(Path(r["path"]).stem[1:]): r for r in results}
    predicted = np.array([by_index[i]["digit"] for i in range(N)])
    acc = float((predicted == labels).mean())
    print(f"accuracy: originals {original_acc:.3f}, re-rendered {acc:.3f}")
    assert original_acc > 0.85
    assert acc >= original_acc - 0.01  # at most 1 point lost to the re-rendering
    r0 = by_index[0]
    assert [t["probability"] for t in r0["top_k"]] == sorted(
        (t["probability"] for t in r0["top_k"]), reverse=True)
    assert r0["confidence"] == r0["top_k"][0]["probability"] and len(r0["top_k"]) == 3
    # What the network saw is (nearly) the original MNIST digit again.
    corr = []
    for i in range(N):
        seen = np.asarray(Image.open(by_index[i]["preprocessed"]), np.float64)
        assert seen.shape == (28, 28)
        corr.append(np.corrcoef(seen.ravel(), images[i].ravel().astype(np.float64))[0, 1])
    print(f"mean correlation with the original digit: {np.mean(corr):.3f}")
    assert float(np.mean(corr)) > 0.85


def test_text_output_globs_and_per_file_errors(run_dir, rendered, tmp_path, capsys):
    folder, _, _ = rendered
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    (tmp_path / "cut.png").write_bytes((folder / "d0000.png").read_bytes()[:200])
    rc = cli.main(["predict", str(run_dir), str(folder / "d000[0-3].*"),
                   str(tmp_path / "notes.txt"), str(tmp_path / "blank.png"),
                   str(tmp_path / "cut.png"), str(tmp_path / "missing.png")])
    out, err = capsys.readouterr()
    assert rc == 1  # some files failed, the others were still predicted
    lines = out.strip().splitlines()
    assert len(lines) == 5
    for line in lines[:4]:
        path, label, conf, top = line.split("\t")
        assert Path(path).name.startswith("d00") and label in "0123456789"
        assert 0.0 < float(conf) <= 1.0 and top.count("=") == 3
    # A blank page is an answer, not a failure: no digit.
    assert lines[4] == f"{tmp_path / 'blank.png'}\tno digit"
    assert "notes.txt: not an image" in err and "blank.png" not in err
    assert "cut.png: unreadable or truncated" in err
    assert "missing.png: no such file" in err
    assert "Traceback" not in err


def test_bad_weights_and_top_k_exit_2(run_dir, rendered, tmp_path, capsys):
    folder, _, _ = rendered
    assert cli.main(["predict", "--weights", str(tmp_path / "nope"), str(folder)]) == 2
    assert "nope: no such weights file or run directory" in capsys.readouterr().err
    # The older spelling: a first argument that names a weights file is the weights.
    assert cli.main(["predict", str(tmp_path / "nope.safetensors"), str(folder)]) == 2
    assert "nope.safetensors: no such weights file" in capsys.readouterr().err
    assert cli.main(["predict", str(run_dir), str(folder), "--top-k", "11"]) == 2
    assert "--top-k 11" in capsys.readouterr().err


def _digit_image(digit: np.ndarray, mode: str) -> Image.Image:
    """An MNIST digit as dark ink on light paper, 4x larger, in the given PIL mode."""
    img = Image.fromarray(255 - digit, "L").resize((112, 112), Image.Resampling.BILINEAR)
    if mode == "I;16":
        return Image.fromarray(np.asarray(img, np.uint16) * 257)
    return img.convert("RGB").convert(mode)


def test_an_unconvertible_mode_fails_its_file_only(run_dir, mnist_test, tmp_path, capsys):
    images, _ = mnist_test
    files = {"good.png": ("L", 0), "cmyk.tif": ("CMYK", 1), "deep.tif": ("I;16", 2),
             "lab.tif": ("LAB", 3)}
    for name, (mode, i) in files.items():
        img = _digit_image(images[i], mode)
        assert img.mode == mode
        img.save(tmp_path / name)
    with Image.open(tmp_path / "lab.tif") as im:
        assert im.mode == "LAB"  # Pillow reads it back as LAB, and cannot make it grayscale
    rc = cli.main(["predict", str(run_dir), *(str(tmp_path / n) for n in files), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1  # one file failed; the others were still predicted
    results = {Path(r["path"]).name: r for r in json.loads(out)}
    assert set(results) == set(files)
    from lenet.inference.predict import Predictor

    expected = Predictor.load(run_dir).scores(images[:3]).argmax(1)
    for name in ("good.png", "cmyk.tif", "deep.tif"):
        assert "error" not in results[name], results[name]
        assert results[name]["digit"] == expected[files[name][1]], name
    assert "unsupported image mode LAB" in results["lab.tif"]["error"]
    assert f"lenet: error: {tmp_path / 'lab.tif'}: unsupported image mode LAB" in err
    assert err.count("lenet: error:") == 1 and "Traceback" not in err


def test_an_unforeseen_decoder_failure_fails_its_file_only(run_dir, mnist_test, tmp_path,
                                                           capsys, monkeypatch):
    import lenet.inference.preprocess as P

    images, _ = mnist_test
    for name in ("a.png", "b.png"):
        _digit_image(images[0], "L").save(tmp_path / name)
    real = P.mnist_preprocess

    def flaky(gray, name="image"):
        if name.endswith("b.png"):
            raise RuntimeError("decoder exploded")
        return real(gray, name)

    monkeypatch.setattr(P, "mnist_preprocess", flaky)
    rc = cli.main(["predict", str(run_dir), str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert len(out.strip().splitlines()) == 1 and out.startswith(str(tmp_path / "a.png"))
    assert f"{tmp_path / 'b.png'}: cannot process this image (RuntimeError: decoder exploded)" \
        in err
    assert "Traceback" not in err
