"""``lenet report RUN_DIR``: the run's PNGs and one self-contained ``report.html``.

The page embeds every image as base64 and links nothing outside itself, so it can be mailed,
archived or opened offline.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet.errors import LenetError
from lenet.viz import metrics as M
from lenet.viz import plots
from lenet.viz.modules import activations, conv_layers, conv_mask, conv_weight, rbf_bitmaps

GALLERY_LIMIT = 200  # misclassified digits shown in the report (`lenet evaluate` draws all)


class ReportError(LenetError):
    """The run directory cannot be reported on."""


@dataclass
class Report:
    run_dir: Path
    html: Path
    images: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "html": str(self.html),
                "images": {k: str(v) for k, v in self.images.items()},
                "notes": self.notes, "evaluation": self.evaluation, "seconds": self.seconds}


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path} is not valid JSON: {e}") from None


def build(run_dir: str | os.PathLike[str], map_index: int = 0, image_index: int = 0,
          device: str = "cpu", data_dir: str | None = None) -> Report:
    """Draw every figure of the run into its directory and write ``report.html`` there."""
    from lenet import data, weights
    from lenet.evaluate import evaluate_detailed
    from lenet.summary import summary_dict

    t0 = time.perf_counter()
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"{run}: not a run directory (see `lenet train --run-dir`)")
    config = read_config(run)
    rows = read_metrics(run)
    ev = evaluate_detailed(run, device=device, data_dir=data_dir)
    model, meta = weights.load_model(run, "cpu")
    classes = ev.classes
    rep = Report(run, run / "report.html")
    title = f"{meta.model} on {meta.dataset}"

    # Evaluation: per-class table, confusion, gallery.
    cm = M.confusion_matrix(ev.labels, ev.predictions, len(classes))
    per_class = M.per_class(cm, classes)
    rep.evaluation = {**ev.summary, "per_class": per_class,
                      "macro_avg": M.macro_average(per_class),
                      "top_confusions": M.top_confusions(cm, classes, 10),
                      "confusion_matrix": cm.tolist()}
    rep.images["confusion"] = plots.confusion_heatmap(cm, classes, run / "confusion.png",
                                                      f"{title}: confusion matrix")
    wrong = (ev.labels != ev.predictions).nonzero().flatten()[:GALLERY_LIMIT]
    n_wrong = int((ev.labels != ev.predictions).sum())
    shown = f"the first {len(wrong)} of " if len(wrong) < n_wrong else ""
    rep.images["misclassified"] = plots.misclassified_gallery(
        ev.images[wrong], ev.labels[wrong], ev.predictions[wrong], ev.confidence[wrong],
        classes, run / "misclassified.png",
        title=f"{shown}{n_wrong} misclassified test digits: true→predicted (confidence)")

    # Training curves.
    if rows:
        rep.images["curves"] = plots.training_curves(rows, run / "curves.png", title)
    else:
        rep.notes["curves"] = "no metrics.csv in this run directory"

    # Kernels before and after.
    convs = conv_layers(model)
    initial = run / "initial.safetensors"
    init_model = weights.load_model(initial, "cpu")[0] if initial.is_file() else None
    init_convs = dict(conv_layers(init_model)) if init_model is not None else {}
    if not convs:
        rep.notes["kernels"] = (f"{meta.model} has no convolution, so there are no kernels to "
                                "show (its first layer is fully connected).")
    else:
        name, conv = convs[0]
        w1 = conv_weight(conv)
        if name in init_convs:
            rep.images["kernels1"] = plots.kernels_before_after(
                conv_weight(init_convs[name]), w1, run / "kernels_first_conv.png",
                f"first convolution '{name}': {tuple(w1.shape)} kernels")
        else:
            rep.notes["kernels"] = "no initial.safetensors: showing the trained kernels only"
            rep.images["kernels1"] = plots.kernels_before_after(
                w1, w1, run / "kernels_first_conv.png",
                f"first convolution '{name}'", labels=("after training", "after training"))
        if len(convs) < 2:
            rep.notes["kernels2"] = f"{meta.model} has a single convolution"
        else:
            name2, conv2 = convs[1]
            w2 = conv_weight(conv2)
            out_maps = w2.shape[0]
            if not 0 <= map_index < out_maps:
                raise ReportError(f"--map {map_index}: '{name2}' has output maps 0 to "
                                  f"{out_maps - 1}")
            before = (conv_weight(init_convs[name2])[map_index] if name2 in init_convs
                      else None)
            after = w2[map_index]
            rep.images["kernels2"] = plots.kernels_before_after(
                before if before is not None else after, after,
                run / f"kernels_second_conv_map{map_index}.png",
                f"second convolution '{name2}': output map {map_index} across its "
                f"{after.shape[0]} input maps")
            mask = conv_mask(conv2)
            if mask is not None:
                used = int((mask[map_index] != 0).sum())
                rep.notes["kernels2"] = (f"map {map_index} is connected to {used} of the "
                                         f"{after.shape[0]} input maps (the connection table)")

    # Feature maps for one test digit.
    n_test = len(ev.labels)
    if not 0 <= image_index < n_test:
        raise ReportError(f"--image {image_index}: the test set has digits 0 to {n_test - 1}")
    x = meta.preprocessing(ev.images[image_index:image_index + 1])
    acts = activations(model, x)
    label, pred = int(ev.labels[image_index]), int(ev.predictions[image_index])
    if acts:
        rep.images["feature_maps"] = plots.feature_maps(
            ev.images[image_index], acts, run / f"feature_maps_{image_index}.png",
            f"test digit {image_index}: true {classes[label]}, predicted {classes[pred]}")
    else:
        rep.notes["feature_maps"] = (f"{meta.model} has no convolution or subsampling layer, "
                                     "so there are no feature maps to show.")

    # Digit grids.
    rep.images["predictions"] = plots.prediction_grid(ev.images[:25], ev.predictions[:25],
                                                      ev.labels[:25], classes,
                                                      run / "predictions.png")
    train_x, train_y = data.load(ev.summary["dataset"], "train", data_dir=data_dir)
    rep.images["samples"] = plots.sample_grid(train_x[:36], train_y[:36], classes,
                                              run / "samples.png")

    # The 1998 network's RBF codes.
    bitmaps = rbf_bitmaps(model, len(classes))
    if bitmaps is not None:
        rep.images["rbf"] = plots.rbf_bitmaps(bitmaps, classes, run / "rbf_bitmaps.png")

    layers = summary_dict(meta.model)
    rep.html.write_text(_html(rep, title, config, rows, layers, map_index, image_index),
                        encoding="utf-8")
    rep.seconds = time.perf_counter() - t0
    return rep


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1250px;padding:0 1em;color:#1f2328}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.5em .8em;border-radius:6px}
nav a{margin-right:.8em}
"""

_SECTIONS = [("summary", "Summary"), ("curves", "Training curves"),
             ("metrics", "Metrics per epoch"), ("per-class", "Per-class results"),
             ("confusion", "Confusion matrix"), ("kernels", "First convolution's kernels"),
             ("kernels2", "Second convolution's kernels"), ("feature-maps", "Feature maps"),
             ("predictions", "Test predictions"), ("samples", "Training samples"),
             ("misclassified", "Misclassified digits"), ("rbf", "RBF output bitmaps"),
             ("layers", "Layers"), ("config", "Configuration")]


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    return html.escape("" if v is None else str(v))


def _table(header: list[str], body: list[list[Any]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
                 for i, h in enumerate(header))
    trs = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_fmt(v)}</td>'
                                   for i, v in enumerate(row)) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _metric_cell(v: str) -> Any:
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f


def _html(rep: Report, title: str, config: dict[str, Any], rows: list[dict[str, str]],
          layers: dict[str, Any], map_index: int, image_index: int) -> str:
    ev = rep.evaluation
    parts: dict[str, str] = {}

    def note(key: str) -> str:
        return f'<p class="note">{html.escape(rep.notes[key])}</p>' if key in rep.notes else ""

    def image(key: str, alt: str) -> str:
        return _img(rep.images[key], alt) if key in rep.images else ""

    train_acc = ev.get("training_test_accuracy")
    parts["summary"] = _table(["", ""], [
        ["model", ev["model"]], ["dataset", ev["dataset"]],
        ["test digits", ev["total"]], ["test accuracy", ev["accuracy"]],
        ["errors", ev["errors"]], [f"test loss ({ev['loss_name']})", ev["loss"]],
        ["accuracy recorded at the end of training", train_acc],
        ["epochs", len(rows)], ["parameters", layers["total_params"]],
        ["connections", layers["total_connections"]]])
    parts["curves"] = note("curves") + image("curves", "training curves")
    if rows:
        header = list(rows[0])
        parts["metrics"] = _table(header, [[_metric_cell(r[h]) for h in header] for r in rows])
    else:
        parts["metrics"] = '<p class="note">no metrics.csv</p>'
    per = ev["per_class"]
    macro = ev["macro_avg"]
    parts["per-class"] = _table(
        ["class", "precision", "recall", "F1", "support"],
        [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]] for r in per]
        + [["macro average", macro["precision"], macro["recall"], macro["f1"], ev["total"]]])
    top = ev["top_confusions"]
    parts["confusion"] = image("confusion", "confusion matrix") + (
        "<h3>Most frequent confusions</h3>" + _table(
            ["true", "predicted", "count"], [[t["true"], t["predicted"], t["count"]]
                                             for t in top])
        if top else "<p>No confusions: every test digit is classified correctly.</p>")
    parts["kernels"] = note("kernels") + image("kernels1", "first convolution kernels")
    parts["kernels2"] = (f"<p>Output map {map_index} (<code>--map</code>).</p>"
                         if "kernels2" in rep.images else "") + note("kernels2") + image(
        "kernels2", "second convolution kernels")
    if "kernels2" not in rep.images and "kernels2" not in rep.notes:
        parts["kernels2"] = note("kernels")
    parts["feature-maps"] = (f"<p>Test digit {image_index} (<code>--image</code>), after "
                             "every convolution and subsampling layer; each map on its own "
                             "scale.</p>" if "feature_maps" in rep.images else "") + note(
        "feature_maps") + image("feature_maps", "feature maps")
    parts["predictions"] = image("predictions", "test predictions")
    parts["samples"] = image("samples", "training samples")
    parts["misclassified"] = image("misclassified", "misclassified digits")
    parts["rbf"] = image("rbf", "RBF bitmaps") if "rbf" in rep.images else (
        "<p>This model has no RBF output layer.</p>")
    parts["layers"] = _table(
        ["layer", "type", "output", "params", "connections"],
        [[r["name"], r["kind"], "x".join(map(str, r["output_shape"])), r["params"],
          r["connections"]] for r in layers["layers"]]
        + [["total", "", "", layers["total_params"], layers["total_connections"]]], left=3)
    parts["config"] = _table(["key", "value"], [[k, v if isinstance(v, str) else json.dumps(v)]
                                                for k, v in config.items()]) if config else (
        '<p class="note">no config.json</p>')
    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in _SECTIONS)
    body = "".join(f'<section id="{k}"><h2>{html.escape(t)}</h2>{parts[k]}</section>'
                   for k, t in _SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>lenet report: {html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>lenet report: {html.escape(title)}</h1>"
            f"<p>{html.escape(str(rep.run_dir))}</p><nav>{nav}</nav>{body}</body></html>\n")
