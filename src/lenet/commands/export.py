"""`lenet export`: saved weights -> an ONNX file (see :mod:`lenet.export`)."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export saved weights to ONNX",
                       description="Export a run directory or weights file to ONNX (dynamic "
                                   "batch; preprocessing, model name and classes in the "
                                   "metadata_props), checked with onnx.checker, written "
                                   "atomically.")
    p.add_argument("path", metavar="WEIGHTS", nargs="?", help=options.WEIGHTS_HELP)
    options.add_weights(p)
    p.add_argument("--format", choices=("onnx",), default="onnx")
    options.add_out(p, "where to write (default: next to the weights, with suffix .onnx; "
                       "./NAME.onnx for bundled weights)",
                    "-o", "--output")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.export import export_onnx

    path = export_onnx(options.pick_weights(args.path, args.weights), args.out)
    print(f"wrote {path}")
    return 0
