"""`lenet summary MODEL`: the layer table (output shapes, parameters, connections)."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("summary", help="layer table: output shapes, parameters, connections")
    p.add_argument("model")
    options.add_json(p, "the table")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.analysis.summary import format_summary, summary_dict
    from lenet.console import print_json

    d = summary_dict(args.model)
    if args.json:
        print_json(d)
    else:
        print(format_summary(d))
    return 0
