"""`lenet paper`: the 1998 paper's MNIST comparison (Fig. 9), with rejection and cost per digit,
every row trained or fitted here."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lenet.paper.rows import ROWS

    p = sub.add_parser(
        "paper", help="reproduce the 1998 paper's MNIST comparison (Figs. 9-12)",
        description="Train the paper's networks and fit its classical methods, then put our "
                    "test errors beside Fig. 9's, with the rejection needed for 0.5 % error "
                    "(Fig. 10), the multiply-accumulates and numbers stored per digit, the "
                    "training time and the measured time per digit (Figs. 11-12). Neural rows: "
                    + ", ".join(r.name for r in ROWS) + "; the classical rows (k-NN, SVMs, "
                    "PCA, RBF, hybrids...): see --list.")
    p.add_argument("--list", action="store_true", help="list every row (neural and classical) "
                   "with the paper's error, and exit")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these rows (see --list)")
    p.add_argument("--reading", action="store_true",
                   help="instead: read the string benchmark with the paper's three methods "
                        "(sdnn, segment, components; --only picks some) and print that table; "
                        "--test-subset N reads the first N strings of each part")
    p.add_argument("--seeds", type=int, default=1, help="runs per row (mean ± std)")
    p.add_argument("--epochs", type=int, help="override every recipe's passes")
    p.add_argument("--train-subset", type=int, help="train on the first N digits only")
    p.add_argument("--test-subset", type=int, help="test on the first N digits only")
    p.add_argument("--reject", type=float, default=0.5, metavar="PCT",
                   help="the error (%%) the rejection column is for (default 0.5, as Fig. 10)")
    options.add_device(p)
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="rows (and seeds) at a time (default 1); each worker gets "
                        "cpu_count/jobs threads")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="kill a neural run (and count it failed) after this long; classical "
                        "rows run in this process and are not timed out")
    options.add_run_dir(p, "where the runs and the table go (default runs/<time>-paper)")
    options.add_json(p, "the report")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.console import print_json
    from lenet.paper import runner as paper

    if args.reading:
        return _reading(args)
    rows = paper.select(args.only)
    if args.list:
        print(paper.format_list(rows))
        return 0
    report = paper.run(rows, seeds=args.seeds, epochs=args.epochs,
                       train_subset=args.train_subset, test_subset=args.test_subset,
                       device=args.device, run_dir=args.run_dir, jobs=args.jobs,
                       timeout=args.timeout, reject=args.reject)
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


def _reading(args: argparse.Namespace) -> int:
    from lenet.console import print_json
    from lenet.paper import reading

    report = reading.run(args.only or reading.METHODS, limit=args.test_subset,
                         run_dir=args.run_dir)
    if args.json:
        print_json(report)
    else:
        print(reading.format_markdown(report), end="")
        print(f"written to {report['run_dir']}/reading.md and reading.json")
    return 0
