"""The ``evaluate``, ``report`` and ``compare`` subcommands, for ``lenet.cli`` to register.

In ``lenet.cli``: ``_add_evaluate`` calls :func:`add_evaluate_options` on its parser and sets
``handler=run_evaluate``; ``build_parser`` calls :func:`add_parsers` on the subparsers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------- evaluate
def add_evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="RUN_DIR_OR_WEIGHTS")
    p.add_argument("--dataset", help="evaluate on this dataset (default: the one it trained on)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir")
    p.add_argument("--test-subset", type=_subset, default=0, metavar="N|run",
                   help="first N test digits (default 0: all); 'run': the subset the run was "
                        "trained with, which reproduces its training-time accuracy exactly")
    p.add_argument("--out", metavar="DIR",
                   help="where the PNGs go (default: the run dir, or . for a weights file)")
    p.add_argument("--no-plots", action="store_true", help="skip the confusion and gallery PNGs")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: metrics, per-class table, confusion matrix, mistakes")


def _subset(text: str) -> int | None:
    if text == "run":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'run', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def evaluation_dict(path: str, dataset: str | None = None, device: str = "cpu",
                    data_dir: str | None = None, test_subset: int | None = 0,
                    out: str | None = None, plots: bool = True) -> dict[str, Any]:
    """Everything `lenet evaluate` reports, as one JSON-ready dict (PNGs written to `out`).

    `test_subset`: 0 for the whole test set, N for the first N digits, None for the subset the
    run was trained with (which reproduces the training-time accuracy exactly).
    """
    from lenet.evaluate import evaluate_detailed
    from lenet.viz import metrics as M

    ev = evaluate_detailed(path, dataset=dataset, device=device, data_dir=data_dir,
                           test_subset=test_subset)
    classes = ev.classes
    cm = M.confusion_matrix(ev.labels, ev.predictions, len(classes))
    rows = M.per_class(cm, classes)
    result = {**ev.summary, "run_test_subset": ev.run_test_subset, "classes": classes,
              "per_class": rows,
              "macro_avg": M.macro_average(rows), "confusion_matrix": cm.tolist(),
              "top_confusions": M.top_confusions(cm, classes, 10),
              "misclassified": M.misclassified(ev.labels, ev.predictions, ev.confidence,
                                               classes),
              "plots": {}}
    if plots:
        from lenet.viz import plots as P

        out_dir = Path(out) if out else (Path(path) if Path(path).is_dir() else Path("."))
        name = f"{ev.summary['model']} on {ev.summary['dataset']}"
        result["plots"] = {
            "confusion": str(P.confusion_heatmap(cm, classes, out_dir / "confusion.png",
                                                 f"{name}: confusion matrix")),
            "misclassified": str(P.misclassified_gallery(
                ev.images, ev.labels, ev.predictions, ev.confidence, classes,
                out_dir / "misclassified.png")),
        }
    return result


def format_evaluation(r: dict[str, Any]) -> str:
    import torch

    from lenet.viz.metrics import format_confusion

    lines = [f"{r['model']} on {r['dataset']} test: accuracy {r['accuracy']:.4f} "
             f"({r['errors']} errors of {r['total']}), {r['loss_name']} loss {r['loss']:.4f}"]
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
              format_confusion(torch.tensor(r["confusion_matrix"]), r["classes"])]
    if r["top_confusions"]:
        lines += ["", "most frequent confusions: " + ", ".join(
            f"{t['true']}→{t['predicted']} ×{t['count']}" for t in r["top_confusions"])]
    for key, p in r["plots"].items():
        lines.append(f"{key}: {p}")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    r = evaluation_dict(args.path, dataset=args.dataset, device=args.device,
                        data_dir=args.data_dir, test_subset=args.test_subset, out=args.out,
                        plots=not args.no_plots)
    _print_json(r) if args.json else print(format_evaluation(r))
    return 0


# --------------------------------------------------------------------------- report, compare
def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="plots of a run and one self-contained report.html",
                       description="Write the run's figures (PNG) and report.html into RUN_DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--map", dest="map_index", type=int, default=0, metavar="K",
                   help="output map of the second convolution whose kernels to show")
    p.add_argument("--image", dest="image_index", type=int, default=0, metavar="I",
                   help="test digit whose feature maps to show")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_report)

    c = sub.add_parser("compare", help="runs side by side, and their accuracy curves")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", default="compare.png", metavar="FILE",
                   help="PNG with every run's accuracy curve (default compare.png)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=run_compare)


def run_report(args: argparse.Namespace) -> int:
    from lenet.viz.report import build

    rep = build(args.run_dir, map_index=args.map_index, image_index=args.image_index,
                device=args.device, data_dir=args.data_dir)
    if args.json:
        _print_json(rep.to_dict())
    else:
        for note in rep.notes.values():
            print(f"note: {note}")
        print(f"wrote {len(rep.images)} figures and {rep.html} in {rep.seconds:.1f}s")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from lenet.viz.compare import compare, format_table

    r = compare(args.run_dirs, args.out)
    if args.json:
        _print_json(r)
    else:
        print(format_table(r["runs"]))
        print(f"accuracy curves: {r['plot']}")
    return 0
