"""``lenet evaluate``'s report: metrics, per-class table, confusion matrix, every mistake, and
the confusion and misclassified-digits PNGs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lenet.analysis import metrics as M
from lenet.analysis.evaluate import evaluate_detailed, load, rejection_at
from lenet.analysis.figures import plots as P
from lenet.console import plural


def evaluation_dict(path: str | os.PathLike[str], dataset: str | None = None,
                    device: str = "cpu", data_dir: str | None = None,
                    test_subset: int | None = 0, plot_dir: str | os.PathLike[str] | None = None,
                    plots: bool = True, reject: float | None = None) -> dict[str, Any]:
    """Everything `lenet evaluate` reports, as one JSON-ready dict.

    `test_subset`: 0 for the whole test set, N for the first N digits, None for the subset the
    run was trained with (which reproduces the training-time accuracy exactly). The PNGs go to
    `plot_dir`, by default the run directory; weights with no run directory (a file, bundled
    weights) get PNGs only in a `plot_dir` given, never in the current directory unasked.
    `reject`: also the percentage of digits to reject, least confident first, for that error %.
    """
    ev = evaluate_detailed(load(path, device), dataset=dataset, data_dir=data_dir,
                           test_subset=test_subset)
    classes = ev.classes
    cm, tables = M.classification_report(ev.labels, ev.predictions, classes)
    result = {**ev.summary, "run_test_subset": ev.run_test_subset, "classes": classes,
              **tables,
              "misclassified": M.misclassified(ev.labels, ev.predictions, ev.confidence,
                                               classes),
              "plots": {}}
    if reject is not None:
        assert ev.scores is not None
        result["rejection"] = {"target_error": reject,
                               "rejected_percent": rejection_at(ev.scores, ev.labels, reject)}
    out = Path(plot_dir) if plot_dir else (Path(path) if Path(path).is_dir() else None)
    if plots and out is None:
        result["plots_note"] = (f"no figures written: {path} has no run directory; pass "
                                "--out DIR for confusion.png and misclassified.png")
    elif plots and out is not None:
        name = f"{ev.summary['model']} on {ev.summary['dataset']}"
        confusion, gallery = out / "confusion.png", out / "misclassified.png"
        P.confusion_heatmap(cm, classes, confusion, f"{name}: confusion matrix")
        P.misclassified_gallery(ev.images, ev.labels, ev.predictions, ev.confidence, classes,
                                gallery)
        result["plots"] = {"confusion": str(confusion), "misclassified": str(gallery)}
    return result


def format_evaluation(r: dict[str, Any]) -> str:
    """:func:`evaluation_dict` as the text ``lenet evaluate`` prints."""
    lines = [f"{r['model']} on {r['dataset']} test: accuracy {r['accuracy']:.4f} "
             f"({plural(r['errors'], 'error')} of {r['total']}), {r['loss_name']} loss "
             f"{r['loss']:.4f}"]
    if r.get("training_test_accuracy") is not None:
        lines.append(f"accuracy recorded at the end of training: "
                     f"{r['training_test_accuracy']:.4f}"
                     + (f" (on its first {r['run_test_subset']:,} test digits; "
                        "--test-subset run evaluates on those)"
                        if r.get("run_test_subset") not in (None, 0, r["total"]) else ""))
    lines += ["", f"{'class':<12}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}"]
    for c in [*r["per_class"], {"class": "macro avg", **r["macro_avg"], "support": r["total"]}]:
        lines.append(f"{c['class'][:11]:<12}{c['precision']:>10.4f}{c['recall']:>10.4f}"
                     f"{c['f1']:>10.4f}{c['support']:>10}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              M.format_confusion(torch.tensor(r["confusion_matrix"]), r["classes"])]
    if r["top_confusions"]:
        lines += ["", "most frequent confusions: " + ", ".join(
            f"{t['true']}→{t['predicted']} ×{t['count']}" for t in r["top_confusions"])]
    for key, p in r["plots"].items():
        lines.append(f"{key}: {p}")
    if r.get("plots_note"):
        lines.append(r["plots_note"])
    return "\n".join(lines)
