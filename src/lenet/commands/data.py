"""`lenet data fetch|info`: download and verify a dataset; show where it is and what it holds."""

from __future__ import annotations

import argparse
from typing import Any, Literal

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("data", help="fetch and inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{fetch,info}")
    f = dsub.add_parser("fetch", help="download and verify a dataset (mnist by default)")
    f.add_argument("name", nargs="?", default="mnist")
    options.add_data_dir(f)
    _add_verify(f)
    f.set_defaults(handler=run)
    i = dsub.add_parser("info", help="location, counts, label histogram, checksum status")
    i.add_argument("name", nargs="?", help="one dataset (default: all)")
    options.add_data_dir(i)
    _add_verify(i)
    options.add_json(i, "one object per dataset")
    i.set_defaults(handler=run)
    return p


def _add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify", action="store_true",
                   help="rehash every file, ignoring the cached verification (slower; "
                        "catches any change to the files)")


def run(args: argparse.Namespace) -> int:
    from lenet import data
    from lenet.console import print_json

    verify: Literal["cached", "full"] = "full" if args.verify else "cached"
    if args.data_command == "fetch":
        path = data.fetch(args.name, data_dir=args.data_dir, verify=verify)
        print(f"{args.name}: verified files in {path}")
        return 0
    names = [args.name] if args.name else list(data.DATASETS)
    infos = [data.info(n, data_dir=args.data_dir, verify=verify) for n in names]
    if args.json:
        print_json(infos)
    else:
        for d in infos:
            print(format_info(d))
    return 0


def format_info(d: dict[str, Any]) -> str:
    lines = [f"{d['name']}: {d['location']}"]
    for file, status in d.get("files", {}).items():
        lines.append(f"  {file:<26} {status}")
    if "mismatch" in d.get("files", {}).values():
        lines.append("  mismatch: not the pinned bytes (edited or corrupted); run "
                     f"`lenet data fetch {d['name']}` to replace them")
    samples, hist = d.get("samples") or {}, d.get("label_histogram") or {}
    if not samples:
        lines.append(f"  not fetched yet: run `lenet data fetch {d['name']}`")
        return "\n".join(lines)
    splits = list(samples)
    lines.append(f"  {'class':<14}" + "".join(f"{s:>9}" for s in splits))
    classes: dict[str, int] = next(iter(hist.values()), {})
    for c in classes:
        lines.append(f"  {c:<14}" + "".join(f"{hist[s].get(c, 0):>9,}" for s in splits))
    lines.append(f"  {'total':<14}" + "".join(f"{samples[s]:>9,}" for s in splits))
    return "\n".join(lines)
