"""``lenet report RUN_DIR``: the run's figures (PNG) and one self-contained report.html."""

from __future__ import annotations

import argparse

from lenet.commands import options

HTML_NAME = "report.html"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report", help="plots of a run and one self-contained report.html",
        description="Write the run's figures (PNG) and report.html into RUN_DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--map", dest="map_index", type=int, default=0, metavar="K",
                   help="output map of the second convolution whose kernels to show")
    p.add_argument("--image", dest="image_index", type=int, default=0, metavar="I",
                   help="test digit whose feature maps to show")
    options.add_device(p)
    options.add_data_dir(p)
    options.add_json(p, "the figures, notes and evaluation")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet import atomic, rundir
    from lenet.console import print_json

    # The report goes into the run directory: find out it cannot before evaluating anything
    # (and before importing torch). HTML_NAME is lenet.viz.report.HTML, whose import is heavy.
    atomic.ensure_writable(rundir.require(args.run_dir) / HTML_NAME,
                           fix="copy the run directory somewhere writable and report on the copy")
    from lenet.viz.report import build

    rep = build(args.run_dir, map_index=args.map_index, image_index=args.image_index,
                device=args.device, data_dir=args.data_dir)
    if args.json:
        print_json(rep.to_dict())
    else:
        for note in rep.notes.values():
            print(f"note: {note}")
        print(f"wrote {len(rep.images)} figures and {rep.html} in {rep.seconds:.1f}s")
    return 0
