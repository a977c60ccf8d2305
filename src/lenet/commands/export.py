"""`lenet export`: saved weights -> an ONNX file (see :mod:`lenet.inference.export`), or a static
web site that draws and reads digits with no server (see :mod:`lenet.inference.webexport`)."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export saved weights to ONNX or a static web page",
                       description="Export a run directory or weights file. --format onnx "
                                   "(default): one ONNX file (dynamic batch; preprocessing, "
                                   "model name and classes in the metadata_props), checked with "
                                   "onnx.checker. --format web: a folder with the draw-a-digit "
                                   "page of `lenet serve`, the weights and the forward pass in "
                                   "JavaScript, for any static host (or opened as a file): no "
                                   "server runs the network. Written atomically.")
    p.add_argument("path", metavar="WEIGHTS", nargs="?", help=options.WEIGHTS_HELP)
    options.add_weights(p)
    p.add_argument("--format", choices=("onnx", "web"), default="onnx",
                   help="onnx: one .onnx file; web: a static site in a folder (default: onnx)")
    options.add_out(p, "where to write: the .onnx file (default: next to the weights, with "
                       "suffix .onnx; ./NAME.onnx for bundled weights) or, for --format web, "
                       "the folder (default: next to the weights, STEM-web; ./NAME-web for "
                       "bundled weights)",
                    "-o", "--output")
    p.add_argument("--overwrite", action="store_true",
                   help="--format web: replace an earlier export in the --out folder (only the "
                        "files lenet wrote there, listed in its .lenet-export.json; a "
                        "non-empty folder is refused without it)")
    p.add_argument("--reader", metavar="NAME|FILE", default=None,
                   help="--format web: the reader weights the page reads numbers with "
                        "(default: the bundled reader); 'none': the page reads digits only. "
                        "(To export a reader itself as ONNX, give it as WEIGHTS.)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.errors import ConfigError

    weights = options.pick_weights(args.path, args.weights)
    if args.reader is not None and args.format != "web":
        raise ConfigError("--reader goes with --format web (the page's number reader); to "
                          "export a reader as ONNX, give it as WEIGHTS: lenet export "
                          f"{args.reader}")
    if args.format == "web":
        from lenet.inference.webexport import export_web
        from lenet.models.readers import DEFAULT_READER

        reader = {None: DEFAULT_READER, "none": None}.get(args.reader, args.reader)
        folder = export_web(weights, args.out, overwrite=args.overwrite, reader=reader)
        print(f"wrote {folder}/index.html (serve the folder from any static host, or open the "
              "file)")
        return 0
    from lenet.inference.export import export_onnx

    path = export_onnx(weights, args.out)
    print(f"wrote {path}")
    return 0
