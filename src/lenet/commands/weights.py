"""`lenet weights`: the pretrained weights bundled with lenet (list, publish, verify)."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "weights", help="pretrained weights bundled with lenet: list, publish, verify",
        description="The pretrained weights that ship inside lenet. Any command that takes "
                    "weights (predict, serve, evaluate, report, export) accepts their name.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="name, model, dataset, recorded test accuracy, SHA-256")
    options.add_json(ls, "the list")
    pub = actions.add_parser(
        "publish", help="bundle a run's weights (test accuracy measured again, SHA-256 recorded)")
    pub.add_argument("run", metavar="RUN_DIR_OR_WEIGHTS")
    pub.add_argument("--name", required=True, help="the bundled name, e.g. lenet5-1998")
    pub.add_argument("--recipe", help="the shipped recipe that trained it (default: the model)")
    pub.add_argument("--dest", metavar="DIR",
                     help="where to write the file and manifest.json (default: the package's "
                          "own lenet/models/pretrained)")
    pub.add_argument("--reject-from", metavar="RUN_DIR",
                     help="choose the reject margin (0.5 %% error on the digits kept) on the "
                          "held-out training digits of this run of the same recipe (trained "
                          "with --set val_size=N), and write it into the weights")
    options.add_device(pub)
    ver = actions.add_parser(
        "verify", help="check each bundled file and measure its test accuracy again")
    ver.add_argument("names", nargs="*", metavar="NAME", help="default: all of them")
    options.add_device(ver)
    options.add_json(ver, "the measurements")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.console import print_json

    if args.action == "publish":
        from lenet.inference.publish import publish

        margin = None
        if args.reject_from is not None:
            from lenet.training.reject import held_out_margin

            chosen = held_out_margin(args.reject_from)
            margin = chosen.margin
            print(f"reject margin {chosen.margin:.4f}: {chosen.rejected:.2f} % of "
                  f"{chosen.digits:,} held-out training digits rejected, "
                  f"{chosen.error:.2f} % error on the rest")
        publish(args.run, args.name, args.dest, recipe=args.recipe, device=args.device,
                reject_margin=margin)
        return 0
    if args.action == "verify":
        from lenet.inference.publish import verify

        rows = verify(args.names or None, device=args.device)
        if args.json:
            print_json(rows)
        return 0
    return _list(args.json, print_json)


def _list(as_json: bool, print_json) -> int:
    from lenet.models import get_weights, list_pretrained

    rows = [get_weights(n).meta | {"name": n} for n in list_pretrained()]
    if as_json:
        print_json(rows)
        return 0
    if not rows:
        print("no bundled weights (build them with `make weights`)")
        return 0
    print(f"{'name':<16}{'model':<16}{'dataset':<15}{'test acc':>9}  {'KB':>5}  sha256")
    for r in rows:
        print(f"{r['name']:<16}{r['model']:<16}{r['dataset']:<15}{r['test_accuracy']:>9.4f}  "
              f"{r['bytes'] / 1000:>5.0f}  {r['sha256'][:16]}")
    return 0
