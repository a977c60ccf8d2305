"""`lenet paper`: train the 1998 paper's MNIST rows and put our errors beside its Fig. 9."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lenet.paper import ROWS

    p = sub.add_parser(
        "paper", help="reproduce the 1998 paper's MNIST table (Fig. 9)",
        description="Train the paper's networks and compare test errors with Fig. 9. Rows: "
                    + ", ".join(r.name for r in ROWS))
    p.add_argument("--only", nargs="+", metavar="NAME", help="train only these rows")
    p.add_argument("--seeds", type=int, default=1, help="runs per row (mean ± std)")
    p.add_argument("--epochs", type=int, help="override every recipe's passes")
    p.add_argument("--train-subset", type=int, help="train on the first N digits only")
    p.add_argument("--test-subset", type=int, help="test on the first N digits only")
    options.add_device(p)
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="runs at a time (default 1); each gets cpu_count/jobs threads")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="kill a run (and count it failed) after this long")
    options.add_run_dir(p, "where the runs and the table go (default runs/<time>-paper)")
    options.add_json(p, "the report")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet import paper
    from lenet.console import print_json

    report = paper.run(paper.select(args.only), seeds=args.seeds, epochs=args.epochs,
                       train_subset=args.train_subset, test_subset=args.test_subset,
                       device=args.device, run_dir=args.run_dir, jobs=args.jobs,
                       timeout=args.timeout)
    failed = [f for r in report["rows"] for f in r["failed"]]
    if args.json:
        print_json(report)
    else:
        print(paper.format_markdown(report), end="")
        for r in report["rows"]:
            for f in r["failed"]:
                print(f"\n{r['method']}, seed {f['seed']} failed (log {f['log']}):\n{f['error']}")
        print(f"written to {report['run_dir']}/paper.md and paper.json")
    return 1 if failed else 0
