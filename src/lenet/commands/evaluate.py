"""``lenet evaluate RUN_DIR_OR_WEIGHTS``: accuracy, per-class scores, confusion matrix and the
misclassified digits of a saved run or weights file."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="accuracy, per-class scores, confusion matrix "
                              "and misclassified digits of a saved run or weights file")
    p.add_argument("path", metavar="RUN_DIR_OR_WEIGHTS")
    p.add_argument("--dataset", help="evaluate on this dataset (default: the one it trained on)")
    options.add_device(p)
    options.add_data_dir(p)
    p.add_argument("--test-subset", type=_subset, default=0, metavar="N|run",
                   help="first N test digits (default 0: all); 'run': the subset the run was "
                        "trained with, which reproduces its training-time accuracy exactly")
    options.add_run_dir(p, "where the PNGs go (default: the evaluated run dir, or . for a "
                           "weights file)", "--out")
    p.add_argument("--no-plots", action="store_true", help="skip the confusion and gallery PNGs")
    options.add_json(p, "metrics, per-class table, confusion matrix and mistakes")
    p.set_defaults(handler=run)
    return p


def _subset(text: str) -> int | None:
    """``--test-subset``: a count, or ``run`` (None: the run's own subset)."""
    if text == "run":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'run', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from lenet.console import print_json
    from lenet.viz.evaluation import evaluation_dict, format_evaluation

    r = evaluation_dict(args.path, dataset=args.dataset, device=args.device,
                        data_dir=args.data_dir, test_subset=args.test_subset,
                        plot_dir=args.run_dir, plots=not args.no_plots)
    if args.json:
        print_json(r)
    else:
        print(format_evaluation(r))
    return 0
