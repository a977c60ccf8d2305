"""`lenet models`: every registered model with its parameters, input size and source."""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="list the registered models")
    options.add_json(p, "the list")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.console import print_json
    from lenet.models import count_parameters, get_spec, list_pretrained, names

    rows, bundled = [], set(list_pretrained())
    for name in names():
        spec = get_spec(name)
        rows.append({"name": name, "params": count_parameters(spec.build()),
                     "input_size": spec.input_size, "loss": spec.loss,
                     "description": spec.description, "source": spec.source,
                     "pretrained": name in bundled})
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<16}{'params':>10}  {'input':<7} description")
    for r in rows:
        size = f"{r['input_size']}x{r['input_size']}"
        mark = "  [pretrained]" if r["pretrained"] else ""
        print(f"{r['name']:<16}{r['params']:>10,}  {size:<7} {r['description']}{mark}")
        print(f"{'':<35}source: {r['source']}")
    return 0
