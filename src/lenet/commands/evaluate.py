"""``lenet evaluate RUN_DIR_OR_WEIGHTS``: accuracy, per-class scores, confusion matrix and the
misclassified digits of a saved run or weights file; with ``--suite real``, the accuracy on
each part of the real-input suite (:mod:`lenet.data.suites`) instead."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="accuracy, per-class scores, confusion matrix "
                              "and misclassified digits of a saved run or weights file")
    p.add_argument("path", metavar="RUN_DIR_OR_WEIGHTS", nargs="?",
                   help="a run directory, a .safetensors file or bundled weights' name")
    options.add_weights(p)
    p.add_argument("--dataset", help="evaluate on this dataset (default: the one it trained on)")
    options.add_device(p)
    options.add_data_dir(p)
    p.add_argument("--test-subset", type=_subset, default=0, metavar="N|run",
                   help="first N test digits (default 0: all); 'run': the subset the run was "
                        "trained with, which reproduces its training-time accuracy exactly")
    options.add_run_dir(p, "where the PNGs go (default: the evaluated run dir; weights with no "
                           "run dir, such as a .safetensors file or bundled weights, get PNGs "
                           "only where this says)", "--out")
    p.add_argument("--no-plots", action="store_true", help="skip the confusion and gallery PNGs")
    p.add_argument("--reject", type=_percent, nargs="?", const=0.5, metavar="PCT",
                   help="also print the percentage of test digits to reject (least confident "
                        "first) so that the error on the rest is at most PCT %% (default 0.5, "
                        "as in the 1998 paper's Fig. 10)")
    p.add_argument("--suite", choices=["real"],
                   help="measure on the real-input suite instead of the test set: digits as "
                        "photos and scans (8 styles), in handwriting fonts, and drawn on the "
                        "web page, built from MNIST test digits (one row a part)")
    p.add_argument("--parts", type=_parts, metavar="P[,P...]",
                   help="with --suite: only these parts (default: all)")
    options.add_json(p, "metrics, per-class table, confusion matrix and mistakes")
    p.set_defaults(handler=run)
    return p


def _subset(text: str) -> int | None:
    """``--test-subset``: a count, or ``run`` (None: the run's own subset)."""
    if text == "run":
        return None
    try:
        return options.count(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e}, or 'run'") from None


def _parts(text: str) -> list[str]:
    from lenet.data.suites import PARTS

    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(unknown) or '(none)'}; parts: {', '.join(PARTS)}")
    return names


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in [0, 100), got {value:g}")
    return value


def _check_writable(args: argparse.Namespace) -> None:
    """Fail before the evaluation, not after it, when the PNGs could not be written."""
    from pathlib import Path

    from lenet.storage import atomic

    if args.run_dir:
        folder, fix = Path(args.run_dir), "choose another --run-dir or pass --no-plots"
    elif Path(args.path).is_dir():  # where evaluation_dict puts them by default
        folder, fix = Path(args.path), "pass --run-dir DIR (a writable folder) or --no-plots"
    else:  # weights with no run dir: no PNGs unless --run-dir/--out says where
        return
    atomic.ensure_writable(folder / "confusion.png", fix=fix)


def _format_rejection(rej: dict, total: int) -> str:
    target, pct = rej["target_error"], rej["rejected_percent"]
    if pct is None:
        return (f"rejection for {target:g} % error: unreachable (only rejecting all {total:,} "
                "test digits would do)")
    return (f"rejection for {target:g} % error: {pct:.2f} % of the test digits "
            f"({round(pct * total / 100):,} of {total:,}, least confident first)")


def run(args: argparse.Namespace) -> int:
    from lenet.analysis.figures.evaluation_report import evaluation_dict, format_evaluation
    from lenet.console import print_json
    from lenet.runtime.threads import use_free_cores

    args.path = options.pick_weights(args.path, args.weights)
    use_free_cores()  # threads for the cores free now: no collapse beside other work
    if args.suite or args.parts:
        return _run_suite(args)
    if not args.no_plots:
        _check_writable(args)
    r = evaluation_dict(args.path, dataset=args.dataset, device=args.device,
                        data_dir=args.data_dir, test_subset=args.test_subset,
                        plot_dir=args.run_dir, plots=not args.no_plots, reject=args.reject)
    if args.json:
        print_json(r)
    else:
        print(format_evaluation(r))
        if args.reject is not None:
            print(_format_rejection(r["rejection"], r["total"]))
    return 0


def _run_suite(args: argparse.Namespace) -> int:
    """``--suite real``: one row per part of the real-input suite, and the mean."""
    from lenet.console import log, print_json
    from lenet.data.suites import PARTS, cache_file
    from lenet.errors import ConfigError
    from lenet.inference.suites import evaluate_suite, format_suite

    if not args.suite:
        raise ConfigError("--parts needs --suite real")
    missing = [p for p in args.parts or PARTS if not cache_file(p, args.data_dir).is_file()]
    if missing:
        log(f"building the real-input suite's {', '.join(missing)} (once: about 5 s a part; "
            f"then cached in {cache_file(missing[0], args.data_dir).parent})")
    r = evaluate_suite(args.path, parts=args.parts, data_dir=args.data_dir)
    if args.json:
        print_json(r.to_dict())
    else:
        print(format_suite(r))
    return 0
