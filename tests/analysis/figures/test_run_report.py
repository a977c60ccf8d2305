"""lenet.analysis.figures.run_report and `lenet report` on real tiny runs, down to the page in a
browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.analysis.helpers import (
    KERNELS_SIZE,
    TEST_SUBSET,
    WeightReads,
    gallery_size,
    png_ok,
    run_cli,
    train_run,
)
from tests.chromium import chromium, requires_chromium

SECTIONS = ("summary", "curves", "metrics", "per-class", "confusion", "rejection", "kernels",
            "kernels2",
            "feature-maps", "predictions", "samples", "misclassified", "rbf", "layers", "config")


def _no_external_urls(text: str) -> None:
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', text, re.I)
    assert "http://" not in text and "https://" not in text


def test_report_for_lenet5(runs, monkeypatch) -> None:
    from lenet.analysis.figures.run_report import build

    run = runs["lenet5"]
    reads = WeightReads(monkeypatch)
    rep = build(run.run_dir, map_index=2, image_index=4)
    # model.safetensors decoded once (evaluated and drawn), initial.safetensors once.
    assert reads.count() == 1 and reads.count("initial.safetensors") == 1
    assert set(rep.images) >= {"curves", "kernels1", "kernels2", "feature_maps", "predictions",
                               "samples", "confusion", "misclassified", "rejection"}
    assert "rbf" not in rep.images
    png_ok(rep.images["curves"], (1200, 360))
    png_ok(rep.images["predictions"], (700, 775))
    png_ok(rep.images["samples"], (780, 870))
    png_ok(rep.images["feature_maps"], (1200, 160 + 150 * 5))  # input + c1, s2, c3, s4
    png_ok(rep.images["kernels1"], KERNELS_SIZE)  # c1: (6, 1, 5, 5)
    png_ok(rep.images["kernels2"], KERNELS_SIZE)  # c3's map 2 over its 6 input maps
    png_ok(rep.images["confusion"], (800, 730))
    png_ok(rep.images["rejection"], (800, 450))  # error against rejection (Fig. 10)
    # The report's gallery: all of the run's mistakes, up to its limit of 200.
    png_ok(rep.images["misclassified"], gallery_size(min(rep.evaluation["errors"], 200)))
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
    _rejection_is_the_evaluations(rep, text)
    assert rep.seconds > 0  # measured (how fast is for benchmarks, not unit tests)


def _rejection_is_the_evaluations(rep, text: str) -> None:
    from lenet.analysis.evaluate import evaluate_detailed, load, rejection_at

    ev = evaluate_detailed(load(rep.run_dir))
    pct = rejection_at(ev.scores, ev.labels, 0.5)
    assert rep.evaluation["rejection"] == {"target_error": 0.5, "rejected_percent": pct}
    said = ("only rejecting every digit would" if pct is None else
            "already at most 0.5 %" if pct == 0 else f"Rejecting the {pct:.2f} % least confident")
    assert said in text


def test_report_evaluation_is_the_evaluate_tables(runs) -> None:
    """The report's evaluation and `lenet evaluate`'s share their tables, built once."""
    from lenet.analysis.figures.evaluation_report import evaluation_dict
    from lenet.analysis.figures.run_report import build

    rep = build(runs["mlp"].run_dir)
    ev = evaluation_dict(str(runs["mlp"].run_dir), test_subset=None, plots=False)
    for key in ("per_class", "macro_avg", "confusion_matrix", "top_confusions", "accuracy",
                "loss", "errors", "total", "test_subset"):
        assert rep.evaluation[key] == ev[key], key


def test_report_for_an_mlp_says_it_has_no_kernels(runs) -> None:
    from lenet.analysis.figures.run_report import build

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
    from lenet.analysis.figures.run_report import build
    from lenet.errors import LenetError

    with pytest.raises(LenetError, match="--map 16"):
        build(runs["lenet5"].run_dir, map_index=16)
    with pytest.raises(LenetError, match="--image"):
        build(runs["lenet5"].run_dir, image_index=TEST_SUBSET)


def test_report_rejects_a_missing_run_directory(tmp_path) -> None:
    from lenet.analysis.figures.run_report import build
    from lenet.storage.rundir import RunDirError

    with pytest.raises(RunDirError, match="not a run directory"):
        build(tmp_path / "nowhere")


def test_report_for_the_1998_network_shows_its_rbf_bitmaps(tmp_path, mnist_ready) -> None:
    from lenet.analysis.figures.run_report import build
    from lenet.models import names

    if "lenet5-1998" not in names():
        pytest.skip("lenet5-1998 is not registered")
    run = train_run(tmp_path, "r1998", model="lenet5-1998", train_subset=300, test_subset=200,
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

    from lenet.analysis.figures.run_report import build

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
            rep = json.loads(run_cli(["report", str(runs[name].run_dir), "--json"]))
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


def test_report_on_metrics_with_nan_draws_the_gaps(runs, tmp_path) -> None:
    """A diverged or edited metrics.csv (NaN figures, a NaN epoch) is reported, not a
    ValueError traceback."""
    import csv
    import shutil

    from lenet.analysis.figures.run_report import build

    run_dir = tmp_path / "nan"
    shutil.copytree(runs["mlp"].run_dir, run_dir)
    path = run_dir / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    rows[0] = {k: ("nan" if k != "val_accuracy" and v else v) for k, v in rows[0].items()}
    rows.append({**rows[-1], "epoch": "nan", "test_accuracy": "nan"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rep = build(run_dir)
    png_ok(rep.images["curves"])
    assert "nan" in rep.html.read_text()
