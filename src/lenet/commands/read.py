"""`lenet read`: read whole numbers (zip codes, amounts) in image files
(see :mod:`lenet.inference.read.reader`)."""

from __future__ import annotations

import argparse
from typing import Any

from lenet.commands import options

METHODS = ("sdnn", "segment", "components")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "read", help="read whole numbers (zip codes, amounts) in image files",
        description="Read the number written on one line in each image file (any size and "
                    "mode: made gray, the ink white, the line scaled to MNIST's 20 px). One "
                    "line per file: 'FILE: TEXT (CONFIDENCE)', 'rejected' when the confidence "
                    "is under the threshold, 'no number' for a blank image. Exit status 1 if "
                    "any file failed (one error line each).")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, directories (searched recursively) or glob patterns")
    # One JSON array, as `lenet predict --json`: a result per file.
    p.add_argument("--json", action="store_true",
                   help="print one JSON array: per file its name ('file') and reading (text, "
                        "confidence, rejected, each digit's x0, x1 in the image's pixels and "
                        "probability, the SDNN's output columns and Viterbi path)")
    p.add_argument("--length", type=int, default=None, metavar="N",
                   help="read exactly N characters (a zip code: 5)")
    p.add_argument("--pattern", default=None, metavar="zip|amount|TEMPLATE",
                   help="what the number looks like: zip (5 digits), amount (digits, a point, "
                        "two digits), or a template: d any digit, a literal digit or '.', "
                        "each with an optional {m}, {m,n}, +, * or ? (e.g. 'd{3,4}', 'd+.dd')")
    p.add_argument("--method", choices=METHODS, default="sdnn",
                   help="sdnn (default): LeNet-5 over the line, decoded by Viterbi; segment: "
                        "over-segmentation + the digit recognizer + Viterbi; components: one "
                        "digit per connected component (the naive baseline)")
    p.add_argument("--weights", metavar="NAME|FILE", default=None,
                   help="reader weights for sdnn (default: the bundled reader), digit weights "
                        "for segment and components (default: the bundled default digits)")
    p.add_argument("--reject", type=float, default=None, metavar="X",
                   help="reject readings whose confidence is under X, 0..1 (default: the "
                        "reader weights' own threshold, chosen for 1%% string errors)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes reading the files, each a share of them (default: one per "
                        "free core, 1 under OMP_NUM_THREADS; a process needs 256 files to be "
                        "worth starting)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.errors import ConfigError
    from lenet.inference.files import read_files
    from lenet.inference.read.decode import PatternError, decode
    from lenet.inference.read.reader import Reader
    from lenet.runtime.threads import use_free_cores

    if args.length is not None and args.length < 1:
        raise ConfigError(f"--length {args.length}: expected a whole number >= 1")
    if args.reject is not None and not 0.0 <= args.reject <= 1.0:
        raise ConfigError(f"--reject {args.reject}: expected a confidence in 0..1")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected a whole number >= 1")
    try:  # the pattern checked before any work: one line, not an error per file
        decode(_probe(), args.length, args.pattern)
    except PatternError as e:
        raise ConfigError(f"--pattern {args.pattern!r}: {e}") from None
    # One worker per free core (each with one thread), unless told: OMP_NUM_THREADS too says
    # how much of the machine to use.
    free = use_free_cores()
    workers = args.workers or free or 1
    kwargs: dict[str, Any] = {"method": args.method, "reject": args.reject, "workers": workers}
    if args.weights is not None:
        kwargs["weights" if args.method == "sdnn" else "digits"] = args.weights
    reader = Reader(**kwargs)
    results = read_files(reader, args.inputs, args.length, args.pattern, columns=args.json)
    return options.print_file_results(results, args.json, format_line, "file")


def _probe() -> Any:
    import numpy as np

    return np.log(np.full((1, 12), 1.0 / 12))


def format_line(r: dict[str, Any]) -> str:
    """``FILE: TEXT (CONFIDENCE)``, then ``rejected`` where it is; ``no number`` for ""."""
    text = r["text"] or "no number"
    return f"{r['file']}: {text} ({r['confidence']:.3f})" + (" rejected" if r["rejected"]
                                                              else "")
