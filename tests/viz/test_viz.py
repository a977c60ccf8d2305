"""lenet.viz on real tiny runs: evaluation, report, TensorBoard, compare, and the CLI commands."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.models.lenet1998 import SparseConv2d
from lenet.viz import metrics as M
from lenet.viz.modules import activations, conv_layers, conv_weight, rbf_bitmaps
from tests.viz.chromium import chromium, requires_chromium

TEST_SUBSET = 500
# Both kernel figures show six 5x5 kernels, three to a row: an 11x17 grid scaled to fit 5 in
# wide, two panels plus colour bars -> 12.5 x 4.44 in at 100 dpi.
KERNELS_SIZE = (1250, 444)


def _train(root: Path, name: str, **overrides):
    from lenet.config import resolve
    from lenet.train import train

    cfg = resolve(None, {"epochs": 1, "train_subset": 1000, "test_subset": TEST_SUBSET,
                         "seed": 3, "run_dir": str(root / name), **overrides})
    return train(cfg, log=lambda s: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> dict:
    root = tmp_path_factory.mktemp("viz-runs")
    return {"lenet5": _train(root, "lenet5", model="lenet5", val_size=200),
            "mlp": _train(root, "mlp", model="mlp", epochs=2)}


def png_ok(path: Path, size: tuple[int, int] | None = None, min_var: float = 50.0) -> np.ndarray:
    """The PNG decodes, has the expected (width, height) (+-2 px), and is not blank."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        if size is not None:
            assert abs(im.width - size[0]) <= 2 and abs(im.height - size[1]) <= 2, im.size
        gray = np.asarray(im.convert("L"), dtype=np.float64)
    assert gray.var() > min_var, f"{path} looks blank (variance {gray.var():.1f})"
    return gray


def _gallery_size(n: int) -> tuple[int, int]:
    """The misclassified gallery: 20 digits a row, cells of 34x42 data px at 2.6 px each."""
    cols = min(20, n)
    rows = math.ceil(n / cols)
    return round(cols * 34 * 2.6 + 20), round(rows * 42 * 2.6 + 60)


# --------------------------------------------------------------------------- metrics (unit)
def test_confusion_matrix_and_per_class_by_hand() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2, 1])
    cm = M.confusion_matrix(labels, preds, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    rows = M.per_class(cm, ["a", "b", "c"])
    assert rows[0]["precision"] == pytest.approx(2 / 3)
    assert rows[0]["recall"] == pytest.approx(2 / 3)
    assert rows[1]["precision"] == pytest.approx(2 / 4) and rows[1]["recall"] == 1.0
    assert rows[1]["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert rows[2]["precision"] == 1.0 and rows[2]["recall"] == pytest.approx(0.5)
    assert [r["support"] for r in rows] == [3, 2, 4]
    top = M.top_confusions(cm, ["a", "b", "c"], k=10)
    assert [(t["true"], t["predicted"], t["count"]) for t in top] == [
        ("a", "b", 1), ("c", "a", 1), ("c", "b", 1)]
    wrong = M.misclassified(labels, preds, torch.full((9,), 0.5), ["a", "b", "c"])
    assert [w["index"] for w in wrong] == [1, 5, 8]
    text = M.format_confusion(cm, ["a", "b", "c"])
    assert text.splitlines()[3].split() == ["c", "1", "1", "2"]


def test_a_class_never_predicted_has_zero_precision_not_nan() -> None:
    cm = M.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    rows = M.per_class(cm, ["0", "1"])
    assert rows[1] == {"class": "1", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# --------------------------------------------------------------------------- models (generic)
def test_every_registered_model_is_inspectable() -> None:
    from lenet.models import create, get_spec, names

    for name in names():
        model = create(name)
        size = get_spec(name).input_size
        convs = conv_layers(model)
        for _, conv in convs:
            assert conv_weight(conv).dim() == 4
        acts = activations(model, torch.zeros(1, 1, size, size))
        assert all(a.dim() == 3 for _, a in acts)
        fully_connected = not any(isinstance(m, torch.nn.Conv2d | SparseConv2d)
                                  for m in model.modules())
        if fully_connected:  # the MLPs and the linear classifier: nothing to show, no failure
            assert convs == [] and acts == [], name
        else:
            assert len(convs) >= 2 and len(acts) >= 4, name


def test_rbf_bitmaps_found_on_the_1998_network_only() -> None:
    from lenet.models import create, names

    assert rbf_bitmaps(create("lenet5")) is None
    if "lenet5-1998" not in names():
        pytest.skip("lenet5-1998 is not registered")
    bitmaps = rbf_bitmaps(create("lenet5-1998"))
    assert bitmaps is not None and bitmaps.shape == (10, 12, 7)
    assert set(bitmaps.unique().tolist()) == {-1.0, 1.0}
    # The "1" code: its ink (+1) sits in the middle columns, not the outer ones.
    one = bitmaps[1]
    assert one[:, 3].sum() > one[:, 0].sum()


# --------------------------------------------------------------------------- evaluate
def test_evaluation_matches_evaluate_tensors_and_training(runs, tmp_path) -> None:
    from lenet import data, weights
    from lenet.evaluate import evaluate_tensors, evaluate_weights
    from lenet.losses import make_loss
    from lenet.viz.commands import evaluation_dict

    run = runs["lenet5"]
    r = evaluation_dict(str(run.run_dir), out=str(tmp_path), test_subset=None)
    json.dumps(r)  # all of it is JSON
    cm = torch.tensor(r["confusion_matrix"])
    assert cm.shape == (10, 10)
    assert int(cm.sum()) == r["total"] == TEST_SUBSET  # the run's own test subset by default
    assert int(cm.trace()) == r["total"] - r["errors"]
    # The very same numbers as evaluate_tensors on the same inputs, and as training recorded.
    model, meta = weights.load_model(run.run_dir)
    x, y = data.load("mnist", "test")
    ref = evaluate_tensors(model, meta.preprocessing(x[:TEST_SUBSET]), y[:TEST_SUBSET],
                           make_loss("cross-entropy"), 2000)
    assert (r["accuracy"], r["errors"], r["loss"]) == (ref.accuracy, ref.errors, ref.loss)
    assert r["accuracy"] == run.test.accuracy == r["training_test_accuracy"]
    assert evaluate_weights(run.run_dir, test_subset=TEST_SUBSET)["accuracy"] == r["accuracy"]
    # Per-class numbers agree with the matrix.
    for i, row in enumerate(r["per_class"]):
        assert row["support"] == int(cm[i].sum())
        assert row["recall"] == pytest.approx(float(cm[i, i]) / max(int(cm[i].sum()), 1))
    assert len(r["misclassified"]) == r["errors"]
    assert all(w["true"] != w["predicted"] and 0 < w["confidence"] <= 1
               for w in r["misclassified"])
    assert sum(t["count"] for t in r["top_confusions"]) <= r["errors"]
    # PNGs land in --out.
    assert Path(r["plots"]["confusion"]).parent == tmp_path
    png_ok(Path(r["plots"]["confusion"]), (800, 730))
    gallery = png_ok(Path(r["plots"]["misclassified"]), _gallery_size(r["errors"]))
    assert gallery.shape[0] > gallery.shape[1] / 20  # one band of digits per 20 mistakes


def test_evaluate_on_the_full_test_set_when_asked(runs, tmp_path) -> None:
    from lenet.viz.commands import evaluation_dict

    r = evaluation_dict(str(runs["mlp"].run_dir), test_subset=1234, plots=False)
    assert r["total"] == 1234 == sum(map(sum, r["confusion_matrix"]))
    assert r["plots"] == {}


# --------------------------------------------------------------------------- report
SECTIONS = ("summary", "curves", "metrics", "per-class", "confusion", "kernels", "kernels2",
            "feature-maps", "predictions", "samples", "misclassified", "rbf", "layers", "config")


def _no_external_urls(text: str) -> None:
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', text, re.I)
    assert "http://" not in text and "https://" not in text


def test_report_for_lenet5(runs) -> None:
    from lenet.viz.report import build

    run = runs["lenet5"]
    rep = build(run.run_dir, map_index=2, image_index=4)
    assert set(rep.images) >= {"curves", "kernels1", "kernels2", "feature_maps", "predictions",
                               "samples", "confusion", "misclassified"}
    assert "rbf" not in rep.images
    png_ok(rep.images["curves"], (1200, 360))
    png_ok(rep.images["predictions"], (700, 775))
    png_ok(rep.images["samples"], (780, 870))
    png_ok(rep.images["feature_maps"], (1200, 160 + 150 * 5))  # input + c1, s2, c3, s4
    png_ok(rep.images["kernels1"], KERNELS_SIZE)  # c1: (6, 1, 5, 5)
    png_ok(rep.images["kernels2"], KERNELS_SIZE)  # c3's map 2 over its 6 input maps
    png_ok(rep.images["confusion"], (800, 730))
    # The report's gallery: all of the run's mistakes, up to its limit of 200.
    png_ok(rep.images["misclassified"], _gallery_size(min(rep.evaluation["errors"], 200)))
    # initial.safetensors is in the run: before and after differ, no fallback note.
    assert (run.run_dir / "initial.safetensors").is_file()
    assert "kernels" not in rep.notes
    assert "no initial.safetensors" not in rep.html.read_text()
    assert rep.images["kernels2"].name == "kernels_second_conv_map2.png"
    assert rep.images["feature_maps"].name == "feature_maps_4.png"
    assert all(p.parent == run.run_dir for p in rep.images.values())
    text = rep.html.read_text()
    for s in SECTIONS:
        assert f'<section id="{s}">' in text, s
    _no_external_urls(text)
    assert text.count("data:image/png;base64,") == len(rep.images)
    # The config, the per-epoch metrics table and the per-class table are on the page.
    assert "train_subset" in text and "images_per_s" in text and "macro average" in text
    assert rep.evaluation["accuracy"] == run.test.accuracy
    assert rep.seconds > 0  # measured (how fast is for benchmarks, not unit tests)


def test_report_for_an_mlp_says_it_has_no_kernels(runs) -> None:
    from lenet.viz.report import build

    rep = build(runs["mlp"].run_dir)
    assert "kernels1" not in rep.images and "feature_maps" not in rep.images
    assert "no convolution" in rep.notes["kernels"]
    text = rep.html.read_text()
    assert "has no convolution, so there are no kernels to show" in text
    for s in SECTIONS:
        assert f'<section id="{s}">' in text, s
    _no_external_urls(text)
    png_ok(rep.images["curves"], (1200, 360))


def test_report_rejects_a_bad_map_or_image(runs) -> None:
    from lenet.errors import LenetError
    from lenet.viz.report import build

    with pytest.raises(LenetError, match="--map 16"):
        build(runs["lenet5"].run_dir, map_index=16)
    with pytest.raises(LenetError, match="--image"):
        build(runs["lenet5"].run_dir, image_index=TEST_SUBSET)


def test_report_for_the_1998_network_shows_its_rbf_bitmaps(tmp_path, mnist_ready) -> None:
    from lenet.models import names
    from lenet.viz.report import build

    if "lenet5-1998" not in names():
        pytest.skip("lenet5-1998 is not registered")
    run = _train(tmp_path, "r1998", model="lenet5-1998", train_subset=300, test_subset=200,
                 tensorboard=False)
    rep = build(run.run_dir, map_index=5)
    png_ok(rep.images["rbf"], (1160, 240))  # ten 12x7 bitmaps, 1.1 in each
    assert "connected to 3 of the 6 input maps" in rep.notes["kernels2"]
    png_ok(rep.images["feature_maps"], (1200, 160 + 150 * 6))  # input + c1, s2, c3, s4, c5
    png_ok(rep.images["kernels1"], KERNELS_SIZE)
    png_ok(rep.images["kernels2"], KERNELS_SIZE)
    assert "kernels" not in rep.notes  # trained and initial kernels, not trained twice
    assert "RBF bitmaps" in rep.html.read_text()


def test_report_without_initial_weights_says_so(runs, tmp_path) -> None:
    import shutil

    from lenet.viz.report import build

    run_dir = tmp_path / "no-initial"
    shutil.copytree(runs["lenet5"].run_dir, run_dir)
    (run_dir / "initial.safetensors").unlink()
    rep = build(run_dir)
    assert rep.notes["kernels"] == "no initial.safetensors: showing the trained kernels only"
    text = rep.html.read_text()
    assert "no initial.safetensors: showing the trained kernels only" in text
    png_ok(rep.images["kernels1"], KERNELS_SIZE)


@requires_chromium
def test_report_html_renders_in_chromium(runs, tmp_path) -> None:
    """`lenet report RUN_DIR` -> report.html: no console errors, every image decodes."""
    with chromium() as browser:
        for name in ("lenet5", "mlp"):
            rep = json.loads(_run_cli(["report", str(runs[name].run_dir), "--json"]))
            html_path = Path(rep["html"])
            assert html_path == runs[name].run_dir / "report.html"
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors: list[str] = []
            requested: list[str] = []
            page.on("console", lambda m, e=errors: e.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(f"pageerror: {exc}"))
            page.on("request", lambda req, r=requested: r.append(req.url))
            page.goto(html_path.as_uri(), wait_until="load", timeout=60_000)
            images = page.evaluate("""() => Array.from(document.images).map(i => ({
                alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))""")
            page.screenshot(path=str(tmp_path / f"report-{name}.png"), full_page=True)
            page.close()
            assert errors == [], (name, errors)
            assert len(images) == len(rep["images"]) > 0, (name, images)
            for img in images:
                assert img["complete"] and img["w"] > 0 and img["h"] > 0, (name, img)
            # Each <img> is one of the run's PNGs, decoded at its own pixel size.
            from PIL import Image

            sizes = sorted(Image.open(p).size for p in rep["images"].values())
            assert sorted((i["w"], i["h"]) for i in images) == sizes, name
            # Self-contained: the page itself and data: URIs, nothing fetched from elsewhere.
            assert all(u == html_path.as_uri() or u.startswith("data:")
                       for u in requested), requested
            assert (tmp_path / f"report-{name}.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- TensorBoard
def test_tensorboard_event_tags(runs) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = runs["lenet5"].run_dir
    # The hparams live in the run's own event file, not in a sub-run folder.
    assert not [p for p in run_dir.glob("*/**/events.out.tfevents*")]
    assert len(list(run_dir.glob("events.out.tfevents*"))) == 1
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                       "images": 0, "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    for tag in ("Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test", "Accuracy/val",
                "LR", "hparams/test_accuracy"):
        assert tag in tags["scalars"], tag
    assert "Weights/c1.weight" in tags["histograms"] and "Weights/c3.weight" in tags["histograms"]
    assert tags["images"] == ["Kernels/c1"]
    assert ea.Scalars("hparams/test_accuracy")[-1].value == pytest.approx(
        runs["lenet5"].test.accuracy)
    assert [e.step for e in ea.Scalars("Accuracy/test")] == [1]
    hp = ea.PluginTagToContent("hparams")
    assert set(hp) == {"_hparams_/experiment", "_hparams_/session_start_info",
                       "_hparams_/session_end_info"}
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["model"].string_value == "lenet5"
    assert start.session_start_info.hparams["val_size"].number_value == 200


def test_kernel_image_layout() -> None:
    from lenet.viz.tensorboard import kernel_image

    w = torch.zeros(6, 1, 5, 5)
    w[0, 0, 0, 0] = 1.0
    w[1, 0, 0, 0] = -1.0
    img = kernel_image(w, cols=8, zoom=1)
    assert img.shape == (3, 7, 6 * 6 + 1)
    assert img[:, 1, 1].tolist() == [1.0, 0.0, 0.0]  # positive: red
    assert img[:, 1, 7].tolist() == [0.0, 0.0, 1.0]  # negative: blue
    assert img[:, 2, 2].tolist() == [1.0, 1.0, 1.0]  # zero: white


# --------------------------------------------------------------------------- compare
def test_compare_two_runs(runs, tmp_path) -> None:
    import csv

    from lenet.viz.compare import compare, format_table

    r = compare([str(runs["lenet5"].run_dir), str(runs["mlp"].run_dir)], tmp_path / "c.png")
    a, b = r["runs"]
    assert (a["model"], b["model"]) == ("lenet5", "mlp")
    assert (a["epochs"], b["epochs"]) == (1, 2)
    assert a["params"] == runs["lenet5"].params and b["params"] == runs["mlp"].params
    assert a["final_accuracy"] == runs["lenet5"].test.accuracy
    rows = list(csv.DictReader((runs["mlp"].run_dir / "metrics.csv").open()))
    assert b["best_accuracy"] == max(float(x["test_accuracy"]) for x in rows)
    assert b["seconds_per_epoch"] > 0
    table = format_table(r["runs"])
    assert "lenet5" in table and "mlp" in table and f"{b['params']:,}" in table
    png_ok(Path(r["plot"]), (900, 550))


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    from lenet.viz import commands

    p = argparse.ArgumentParser(prog="lenet")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate")
    commands.add_evaluate_options(e)
    e.set_defaults(handler=commands.run_evaluate)
    commands.add_parsers(sub)
    return p


def _run_cli(argv: list[str]) -> str:
    args = _parser().parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.handler(args) == 0
    return out.getvalue()


def test_cli_commands(runs, tmp_path, monkeypatch) -> None:
    run_dir = str(runs["lenet5"].run_dir)
    r = json.loads(_run_cli(["evaluate", run_dir, "--json", "--out", str(tmp_path / "ev"),
                             "--test-subset", "run"]))
    assert sum(map(sum, r["confusion_matrix"])) == TEST_SUBSET
    assert r["accuracy"] == runs["lenet5"].test.accuracy
    assert (tmp_path / "ev" / "misclassified.png").is_file()
    text = _run_cli(["evaluate", str(runs["lenet5"].run_dir / "model.safetensors"),
                     "--no-plots"])  # default: the whole test set
    assert "of 10000)" in text and "confusion matrix" in text and "macro avg" in text
    assert f"on its first {TEST_SUBSET:,} test digits" in text
    monkeypatch.chdir(tmp_path)
    _run_cli(["evaluate", str(runs["mlp"].run_dir / "model.safetensors")])
    assert (tmp_path / "confusion.png").is_file()  # a weights file: PNGs in the current dir
    rep = json.loads(_run_cli(["report", str(runs["mlp"].run_dir), "--json"]))
    assert Path(rep["html"]).is_file()
    out = _run_cli(["compare", run_dir, str(runs["mlp"].run_dir), "--out", "cmp.png"])
    assert "best acc" in out and (tmp_path / "cmp.png").is_file()
