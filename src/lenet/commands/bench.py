"""`lenet bench`: training and inference speed, side by side in one run, on this machine."""

from __future__ import annotations

import argparse
import json

from lenet.commands import options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="measure training and inference speed side by side",
                              description=__doc__.splitlines()[0])
    options.add_json(p, "every figure")
    options.add_out(p, "also write the JSON to FILE and the Markdown table beside it (.md)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (2 seeds, 1,024 digits, 1 epoch): checks that it runs; "
                        "its figures are not comparable with a full run")
    p.add_argument("--seeds", type=int, default=None, help="seeds for time to 99%% (default 5)")
    options.add_device(p)
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lenet import atomic, bench
    from lenet.console import log, print_json

    s = bench.Settings.quick() if args.quick else bench.Settings()
    if args.seeds is not None:
        s.seeds = max(1, args.seeds)
    result = bench.finite(bench.run(s, args.device, log))
    table = bench.markdown(result)
    if args.out:
        out = Path(args.out)
        atomic.write_text(out, json.dumps(result, indent=2) + "\n")
        atomic.write_text(out.with_suffix(".md"), table)
        log(f"wrote {out} and {out.with_suffix('.md')}")
    if args.json:
        print_json(result)
    else:
        print(table, end="")
    return 0
