"""``lenet compare RUN_DIR RUN_DIR ...``: runs side by side, and their accuracy curves."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="runs side by side, and their accuracy curves")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    options.add_out(p, "write every run's accuracy curve into this PNG (default: none drawn, "
                       "nothing written)")
    options.add_json(p, "every run's row and the plot's path")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.analysis.figures.compare import compare, format_table
    from lenet.console import print_json

    r = compare(args.run_dirs, args.out)
    if args.json:
        print_json(r)
    else:
        print(format_table(r["runs"]))
        print(f"accuracy curves: {r['plot']}" if r["plot"] else
              "accuracy curves: not drawn (pass --out FILE.png to draw them)")
    return 0
