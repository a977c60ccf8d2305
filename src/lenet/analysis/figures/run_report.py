"""``lenet report RUN_DIR``: the run's PNGs and one self-contained ``report.html``.

The page embeds every image as base64 and links nothing outside itself, so it can be mailed,
archived or opened offline. The weights are read once: the model is evaluated on the chosen
device, then drawn on the CPU.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from torch import nn

from lenet import data
from lenet.analysis import metrics as M
from lenet.analysis.evaluate import (
    REJECT_TARGET,
    DetailedEval,
    Loaded,
    evaluate_detailed,
    load,
    rejection_at,
    rejection_curve,
)
from lenet.analysis.figures import plots
from lenet.analysis.figures.robustness_plots import curves
from lenet.analysis.modules import activations, conv_layers, conv_mask, conv_weight, rbf_bitmaps
from lenet.analysis.robustness import RESULT_NAME, read_result
from lenet.analysis.summary import summary_dict
from lenet.errors import LenetError
from lenet.models.weights import WeightsMeta, load_model
from lenet.storage import atomic, rundir

GALLERY_LIMIT = 200  # misclassified digits shown in the report (`lenet evaluate` draws all)
HTML = "report.html"


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


def build(run_dir: str | os.PathLike[str], map_index: int = 0, image_index: int = 0,
          device: str = "cpu", data_dir: str | None = None,
          weights: str | os.PathLike[str] | None = None) -> Report:
    """Draw every figure of the run into its directory and write ``report.html`` there.

    With `weights` (bundled weights' name, or a weights file), report on those instead, into
    the folder `run_dir` (created if needed): everything but the training curves, which live in
    the run that made them."""
    t0 = time.perf_counter()
    if weights is None:
        run = rundir.require(run_dir)
        config = rundir.read_config(run)
        rows = rundir.read_metrics(run, required=("epoch", "test_accuracy"))
        loaded = load(run, device)
    else:
        loaded = load(weights, device)
        run = Path(run_dir)
        run.mkdir(parents=True, exist_ok=True)
        config, rows = dict(loaded.meta.extra.get("config") or {}), []
    return _build(run, loaded, config, rows, evaluate_detailed(loaded, data_dir=data_dir),
                  map_index, image_index, data_dir, t0)


def _build(run: Path, loaded: Loaded, config: dict[str, Any], rows: list[dict[str, Any]],
           ev: DetailedEval, map_index: int, image_index: int, data_dir: str | None,
           t0: float) -> Report:
    model, meta = loaded.model.cpu(), loaded.meta
    rep = Report(run, run / HTML)
    title = f"{meta.model} on {meta.dataset}"
    _evaluation(rep, ev, title)
    _rejection(rep, ev, title)
    if rows:
        rep.images["curves"] = _png(run / "curves.png", plots.training_curves, rows,
                                    title=title)
    else:
        rep.notes["curves"] = (f"no {rundir.METRICS} in this run directory" if
                               (run / rundir.WEIGHTS).is_file() else
                               f"weights {loaded.path.name} come without {rundir.METRICS}: "
                               "the curves are in the run that trained them")
    _kernels(rep, model, meta.model, map_index)
    _feature_maps(rep, model, meta, ev, image_index)
    _digit_grids(rep, ev, data_dir)
    bitmaps = rbf_bitmaps(model)  # the 1998 network's output codes
    if bitmaps is not None:
        rep.images["rbf"] = _png(run / "rbf_bitmaps.png", plots.rbf_bitmaps, bitmaps,
                                 ev.classes)
    _robustness(rep)
    page = _html(rep, title, config, rows, summary_dict(meta.model), map_index, image_index)
    atomic.write_text(rep.html, page)
    rep.seconds = time.perf_counter() - t0
    return rep


# --------------------------------------------------------------------------- figures
def _png(path: Path, draw: Callable[..., Figure], *args: object, **kwargs: object) -> Path:
    """`draw(*args, path=path, **kwargs)`, a :mod:`lenet.analysis.figures.plots` function; the
    PNG's path.

    The Figure it returns is dropped here: it is not pyplot's, so nothing else holds it.
    """
    draw(*args, path=path, **kwargs)
    return path


def _evaluation(rep: Report, ev: DetailedEval, title: str) -> None:
    """The evaluation's tables, the confusion matrix and the gallery of mistakes."""
    classes = ev.classes
    cm, tables = M.classification_report(ev.labels, ev.predictions, classes)
    rep.evaluation = {**ev.summary, **tables}
    rep.images["confusion"] = _png(rep.run_dir / "confusion.png", plots.confusion_heatmap, cm,
                                   classes, title=f"{title}: confusion matrix")
    wrong = (ev.labels != ev.predictions).nonzero().flatten()
    shown = wrong[:GALLERY_LIMIT]
    first = f"the first {len(shown)} of " if len(shown) < len(wrong) else ""
    rep.images["misclassified"] = _png(
        rep.run_dir / "misclassified.png", plots.misclassified_gallery,
        ev.images[shown], ev.labels[shown], ev.predictions[shown], ev.confidence[shown], classes,
        title=f"{first}{len(wrong)} misclassified test digits: true→predicted (confidence)")


def _rejection(rep: Report, ev: DetailedEval, title: str) -> None:
    """Error on the digits kept against the digits rejected (the 1998 paper's Fig. 10)."""
    assert ev.scores is not None  # evaluate_detailed keeps them
    curve = rejection_curve(ev.scores, ev.labels)
    rep.images["rejection"] = _png(rep.run_dir / "rejection.png", plots.error_vs_rejection,
                                   [(title, curve.rejected, curve.error)], REJECT_TARGET)
    rep.evaluation["rejection"] = {"target_error": REJECT_TARGET,
                                   "rejected_percent": rejection_at(ev.scores, ev.labels)}


def _kernels(rep: Report, model: nn.Module, model_name: str, map_index: int) -> None:
    """The first convolution's kernels and one output map of the second, before and after
    training (before: from initial.safetensors, when the run has it)."""
    convs = conv_layers(model)
    if not convs:
        rep.notes["kernels"] = (f"{model_name} has no convolution, so there are no kernels to "
                                "show (its first layer is fully connected).")
        return
    initial = _initial_convs(rep.run_dir)
    _first_kernels(rep, *convs[0], initial)
    if len(convs) < 2:
        rep.notes["kernels2"] = f"{model_name} has a single convolution"
    else:
        _second_kernels(rep, *convs[1], initial, map_index)


def _initial_convs(run: Path) -> dict[str, nn.Module]:
    path = run / rundir.INITIAL
    return dict(conv_layers(load_model(path, "cpu")[0])) if path.is_file() else {}


def _first_kernels(rep: Report, name: str, conv: nn.Module,
                   initial: dict[str, nn.Module]) -> None:
    w = conv_weight(conv)
    path = rep.run_dir / "kernels_first_conv.png"
    if name in initial:
        rep.images["kernels1"] = _png(
            path, plots.kernels_before_after, conv_weight(initial[name]), w,
            title=f"first convolution '{name}': {tuple(w.shape)} kernels")
    else:
        rep.notes["kernels"] = f"no {rundir.INITIAL}: showing the trained kernels only"
        rep.images["kernels1"] = _png(
            path, plots.kernels_before_after, w, w, title=f"first convolution '{name}'",
            labels=("after training", "after training"))


def _second_kernels(rep: Report, name: str, conv: nn.Module, initial: dict[str, nn.Module],
                    map_index: int) -> None:
    w = conv_weight(conv)
    out_maps = w.shape[0]
    if not 0 <= map_index < out_maps:
        raise ReportError(f"--map {map_index}: '{name}' has output maps 0 to {out_maps - 1}")
    after = w[map_index]
    before = conv_weight(initial[name])[map_index] if name in initial else after
    rep.images["kernels2"] = _png(
        rep.run_dir / f"kernels_second_conv_map{map_index}.png", plots.kernels_before_after,
        before, after, title=f"second convolution '{name}': output map {map_index} across its "
        f"{after.shape[0]} input maps")
    mask = conv_mask(conv)
    if mask is not None:
        used = int((mask[map_index] != 0).sum())
        rep.notes["kernels2"] = (f"map {map_index} is connected to {used} of the "
                                 f"{after.shape[0]} input maps (the connection table)")


def _feature_maps(rep: Report, model: nn.Module, meta: WeightsMeta, ev: DetailedEval,
                  image_index: int) -> None:
    """Every convolution's and subsampling layer's output for one test digit."""
    n_test = len(ev.labels)
    if not 0 <= image_index < n_test:
        raise ReportError(f"--image {image_index}: the test set has digits 0 to {n_test - 1}")
    x = meta.preprocessing(ev.images[image_index:image_index + 1])
    acts = activations(model, x)
    if not acts:
        rep.notes["feature_maps"] = (f"{meta.model} has no convolution or subsampling layer, "
                                     "so there are no feature maps to show.")
        return
    label, pred = int(ev.labels[image_index]), int(ev.predictions[image_index])
    rep.images["feature_maps"] = _png(
        rep.run_dir / f"feature_maps_{image_index}.png", plots.feature_maps,
        ev.images[image_index], acts, title=f"test digit {image_index}: true {ev.classes[label]}, "
        f"predicted {ev.classes[pred]}")


def _digit_grids(rep: Report, ev: DetailedEval, data_dir: str | None) -> None:
    """The first test digits with their predictions, and the first training digits."""
    rep.images["predictions"] = _png(rep.run_dir / "predictions.png", plots.prediction_grid,
                                     ev.images[:25], ev.labels[:25], ev.predictions[:25],
                                     ev.classes)
    train_x, train_y = data.load(ev.summary["dataset"], "train", data_dir=data_dir)
    rep.images["samples"] = _png(rep.run_dir / "samples.png", plots.sample_grid,
                                 train_x[:36], train_y[:36], ev.classes)


def _robustness(rep: Report) -> None:
    """The curves of `lenet robustness`, when it wrote its result into this run directory."""
    path = rep.run_dir / RESULT_NAME
    if path.is_file():
        result = read_result(path)
        rep.images["robustness"] = _png(
            rep.run_dir / "robustness.png", curves, result,
            title=f"test accuracy under distortion ({result['models'][0]['digits']:,} test "
                  f"digits, from {RESULT_NAME})")


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
             ("confusion", "Confusion matrix"), ("rejection", "Rejection"),
             ("kernels", "First convolution's kernels"),
             ("kernels2", "Second convolution's kernels"), ("feature-maps", "Feature maps"),
             ("predictions", "Test predictions"), ("samples", "Training samples"),
             ("misclassified", "Misclassified digits"), ("rbf", "RBF output bitmaps"),
             ("robustness", "Robustness to distortions"), ("layers", "Layers"),
             ("config", "Configuration")]


def _html(rep: Report, title: str, config: dict[str, Any], rows: list[dict[str, str]],
          layers: dict[str, Any], map_index: int, image_index: int) -> str:
    parts = _sections(rep, config, rows, layers, map_index, image_index)
    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in _SECTIONS)
    body = "".join(f'<section id="{k}"><h2>{html.escape(t)}</h2>{parts[k]}</section>'
                   for k, t in _SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>lenet report: {html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>lenet report: {html.escape(title)}</h1>"
            f"<p>{html.escape(str(rep.run_dir))}</p><nav>{nav}</nav>{body}</body></html>\n")


def _sections(rep: Report, config: dict[str, Any], rows: list[dict[str, str]],
              layers: dict[str, Any], map_index: int, image_index: int) -> dict[str, str]:
    """Each section's HTML, by its id in :data:`_SECTIONS`."""
    return {
        "summary": _summary(rep.evaluation, rows, layers),
        "curves": _note(rep, "curves") + _image(rep, "curves", "training curves"),
        "metrics": _metrics(rows),
        "per-class": _per_class(rep.evaluation),
        "confusion": _confusion(rep),
        "rejection": _rejection_section(rep),
        "kernels": _note(rep, "kernels") + _image(rep, "kernels1", "first convolution kernels"),
        "kernels2": _kernels2(rep, map_index),
        "feature-maps": _feature_maps_section(rep, image_index),
        "predictions": _image(rep, "predictions", "test predictions"),
        "samples": _image(rep, "samples", "training samples"),
        "misclassified": _image(rep, "misclassified", "misclassified digits"),
        "rbf": _image(rep, "rbf", "RBF bitmaps") if "rbf" in rep.images else (
            "<p>This model has no RBF output layer.</p>"),
        "robustness": _robustness_section(rep),
        "layers": _layers(layers),
        "config": _config(config),
    }


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _image(rep: Report, key: str, alt: str) -> str:
    return _img(rep.images[key], alt) if key in rep.images else ""


def _note(rep: Report, key: str) -> str:
    return f'<p class="note">{html.escape(rep.notes[key])}</p>' if key in rep.notes else ""


def _fmt(v: object) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    return html.escape("" if v is None else str(v))


def _table(header: list[str], body: list[list[object]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
                 for i, h in enumerate(header))
    trs = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_fmt(v)}</td>'
                                   for i, v in enumerate(row)) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _metric_cell(v: str) -> str | int | float:
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f


def _summary(ev: dict[str, Any], rows: list[dict[str, str]], layers: dict[str, Any]) -> str:
    return _table(["", ""], [
        ["model", ev["model"]], ["dataset", ev["dataset"]],
        ["test digits", ev["total"]], ["test accuracy", ev["accuracy"]],
        ["errors", ev["errors"]], [f"test loss ({ev['loss_name']})", ev["loss"]],
        ["accuracy recorded at the end of training", ev.get("training_test_accuracy")],
        ["epochs", len(rows)], ["parameters", layers["total_params"]],
        ["connections", layers["total_connections"]]])


def _metrics(rows: list[dict[str, str]]) -> str:
    if not rows:
        return f'<p class="note">no {rundir.METRICS}</p>'
    header = list(rows[0])
    return _table(header, [[_metric_cell(r[h]) for h in header] for r in rows])


def _per_class(ev: dict[str, Any]) -> str:
    macro = ev["macro_avg"]
    return _table(
        ["class", "precision", "recall", "F1", "support"],
        [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
         for r in ev["per_class"]]
        + [["macro average", macro["precision"], macro["recall"], macro["f1"], ev["total"]]])


def _confusion(rep: Report) -> str:
    top = rep.evaluation["top_confusions"]
    if not top:
        listed = "<p>No confusions: every test digit is classified correctly.</p>"
    else:
        listed = "<h3>Most frequent confusions</h3>" + _table(
            ["true", "predicted", "count"], [[t["true"], t["predicted"], t["count"]]
                                             for t in top])
    return _image(rep, "confusion", "confusion matrix") + listed


def _rejection_section(rep: Report) -> str:
    r = rep.evaluation["rejection"]
    target, pct = r["target_error"], r["rejected_percent"]
    if pct is None:
        said = (f"No rejection brings the error under {target:g} %: "
                "only rejecting every digit would.")
    elif pct == 0:
        said = f"The error is already at most {target:g} % without rejecting any digit."
    else:
        said = (f"Rejecting the {pct:.2f} % least confident test digits brings the error on "
                f"the rest to {target:g} % or less.")
    how = ("A digit is rejected when the margin between its two highest scores is small "
           "(the 1998 paper's Fig. 10); digits with equal margins are rejected together.")
    return f"<p>{html.escape(said)} {html.escape(how)}</p>" + _image(rep, "rejection",
                                                                    "error against rejection")


def _robustness_section(rep: Report) -> str:
    if "robustness" in rep.images:
        return _image(rep, "robustness", "accuracy under each distortion")
    return ("<p>Not measured: <code>lenet robustness RUN_DIR</code> writes the curves into the "
            "run directory, and the next report shows them.</p>")


def _kernels2(rep: Report, map_index: int) -> str:
    if "kernels2" not in rep.images and "kernels2" not in rep.notes:
        return _note(rep, "kernels")  # no convolution at all: say so here too
    which = (f"<p>Output map {map_index} (<code>--map</code>).</p>"
             if "kernels2" in rep.images else "")
    return which + _note(rep, "kernels2") + _image(rep, "kernels2", "second convolution kernels")


def _feature_maps_section(rep: Report, image_index: int) -> str:
    which = (f"<p>Test digit {image_index} (<code>--image</code>), after every convolution and "
             "subsampling layer; each map on its own scale.</p>"
             if "feature_maps" in rep.images else "")
    return which + _note(rep, "feature_maps") + _image(rep, "feature_maps", "feature maps")


def _layers(layers: dict[str, Any]) -> str:
    return _table(
        ["layer", "type", "output", "params", "connections"],
        [[r["name"], r["kind"], "x".join(map(str, r["output_shape"])), r["params"],
          r["connections"]] for r in layers["layers"]]
        + [["total", "", "", layers["total_params"], layers["total_connections"]]], left=3)


def _config(config: dict[str, Any]) -> str:
    if not config:
        return f'<p class="note">no {rundir.CONFIG}</p>'
    return _table(["key", "value"], [[k, v if isinstance(v, str) else json.dumps(v)]
                                     for k, v in config.items()])
