"""`lenet sweep`: a grid of `lenet train` runs over seeds, mean ± std test accuracy per point."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep", help="a grid of training runs over seeds: mean ± std test accuracy",
        description="Run `lenet train` over the grid of every --set KEY=V1,V2,... times seeds "
                    "0..K-1, each run its own process, and tabulate test accuracy per point. "
                    "Lists (milestones, lr_values) separate their items with ':' or ';', "
                    "e.g. --set milestones=3:6,5:8. "
                    "Exits 1 if any run failed.")
    p.add_argument("--config", default="lenet5",
                   help="YAML recipe: a path or a shipped name (default lenet5)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per point (default 3)")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   metavar="KEY=V1[,V2...]", help="a grid axis, e.g. --set lr=0.001,0.003")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="runs at a time (default 1); each gets cpu_count/jobs threads")
    options.add_run_dir(p, "where the runs and the summary go (default runs/<time>-sweep)",
                        "--out")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill a run (and count it failed) after this long")
    options.add_json(p, "the summary, instead of the table,")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.console import print_json
    from lenet.storage import rundir
    from lenet.training.sweep import parse_grid, run_sweep

    out = args.run_dir or rundir.default("sweep")
    result = run_sweep(args.config, parse_grid(args.sets), args.seeds, args.jobs, out,
                       timeout=args.timeout)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.table())
        if result.failed:
            print(f"\n{len(result.failed)} of {len(result.runs)} runs failed:\n")
            print(result.failures())
        print(f"\nsummary: {result.out_dir / 'summary.md'}, {result.out_dir / 'summary.json'}")
    return 0 if result.ok else 1
