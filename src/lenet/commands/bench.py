"""`lenet bench`: training and inference speed, side by side in one run, on this machine."""

from __future__ import annotations

import argparse
import json

from lenet.commands import options
from lenet.runtime.cpu import ISA_LEVELS

# Seconds a capped bench's child has to end on its own after Ctrl-C (it reaches both).
CHILD_GRACE = 10.0


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
    p.add_argument("--isa", choices=("native", *ISA_LEVELS), default="native",
                   help="native (default), or measure an older CPU's code paths on this one: "
                        "avx2 (no AVX-512, bf16 or AMX) or avx512 (no bf16 or AMX) caps torch, "
                        "oneDNN, MKL and numba (not ONNX Runtime) in a child process; this "
                        "CPU's clocks and caches stay, so it is not that machine")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.isa != "native":
        return _run_capped(args)
    from pathlib import Path

    from lenet import bench
    from lenet.console import log, print_json
    from lenet.storage import atomic

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


def child_argv(args: argparse.Namespace) -> list[str]:
    """This bench's arguments again, without --isa (the child runs natively under the caps)."""
    argv = ["bench", "--device", args.device]
    if args.quick:
        argv.append("--quick")
    if args.seeds is not None:
        argv += ["--seeds", str(args.seeds)]
    if args.json:
        argv.append("--json")
    if args.out:
        argv += ["--out", str(args.out)]
    level = getattr(args, "log_level", options.NORMAL)
    if level != options.NORMAL:
        argv.append("-q" if level == options.QUIET else "-v")
    return argv


def _run_capped(args: argparse.Namespace) -> int:
    """`lenet bench --isa ISA`: the caps are read when torch, oneDNN, MKL and numba start, so
    the bench runs again as a child process with them set; its header names them."""
    import os
    import sys

    from lenet.console import log
    from lenet.runtime import jobs
    from lenet.runtime.cpu import isa_cap_environment

    caps = isa_cap_environment(args.isa)
    log(f"lenet bench: capped to {args.isa.upper()} ({', '.join(sorted(caps))}), in a child "
        "process")
    return jobs.run_foreground([sys.executable, "-m", "lenet", *child_argv(args)],
                               env={**os.environ, **caps}, grace=CHILD_GRACE)
