"""``lenet report RUN_DIR``: the run's figures (PNG) and one self-contained report.html."""

from __future__ import annotations

import argparse

from lenet.commands import options

HTML_NAME = "report.html"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report", help="plots of a run and one self-contained report.html",
        description="Write the run's figures (PNG) and report.html into RUN_DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                   help="the run to report on; the report goes into it")
    options.add_weights(p)
    options.add_out(p, "with --weights: the folder to write into (default: ./report-NAME)")
    p.add_argument("--map", dest="map_index", type=int, default=0, metavar="K",
                   help="output map of the second convolution whose kernels to show")
    p.add_argument("--image", dest="image_index", type=int, default=0, metavar="I",
                   help="test digit whose feature maps to show")
    options.add_device(p)
    options.add_data_dir(p)
    options.add_json(p, "the figures, notes and evaluation")
    p.set_defaults(handler=run)
    return p


def _where(args: argparse.Namespace) -> tuple[str, str | None]:
    """Where the report goes, and the weights to report on when they are not a run's."""
    from pathlib import Path

    from lenet.errors import ConfigError

    if args.run_dir is not None and args.weights is not None:
        raise ConfigError("give a run directory or --weights, not both")
    if args.weights is None or Path(args.weights).is_dir():
        if args.out is not None:
            raise ConfigError("--out goes with --weights; a run's report goes into the run")
        return options.pick_weights(args.run_dir, args.weights), None
    name = Path(args.weights).stem if Path(args.weights).suffix else args.weights
    return args.out or f"report-{name}", args.weights


def run(args: argparse.Namespace) -> int:
    from lenet.console import log, plural, print_json
    from lenet.runtime.threads import use_free_cores
    from lenet.storage import atomic, rundir

    folder, weights = _where(args)
    use_free_cores()  # threads for the cores free now: no collapse beside other work
    # The report goes into the run directory: find out it cannot before evaluating anything
    # (and before importing torch). HTML_NAME is lenet.analysis.figures.run_report.HTML, whose
    # import is heavy.
    if weights is None:
        atomic.ensure_writable(rundir.require(folder) / HTML_NAME,
                               fix="copy the run directory somewhere writable and report on "
                                   "the copy")
    else:
        atomic.ensure_writable_dir(folder, fix="pass --out DIR, a folder you can write")
    from lenet.analysis.figures.run_report import build

    rep = build(folder, map_index=args.map_index, image_index=args.image_index,
                device=args.device, data_dir=args.data_dir, weights=weights)
    if args.json:
        print_json(rep.to_dict())
    else:
        print(f"wrote {plural(len(rep.images), 'figure')} and {rep.html} in "
              f"{rep.seconds:.1f}s")
    for note in rep.notes.values():  # notes on stderr (-q hides them); the result on stdout
        log(f"note: {note}")
    return 0
