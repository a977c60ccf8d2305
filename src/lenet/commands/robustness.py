"""``lenet robustness RUN_OR_WEIGHTS...``: test accuracy under rotation, scaling, shifts,
squeezing, shearing, stroke width and noise, one curve per distortion and model (the 1998
paper's invariance claims, measured)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet.commands import options

# The names of lenet.analysis.robustness.KINDS, written out because this module may import only the
# standard library (tests check that the two lists agree).
KIND_NAMES = ("rotation", "scale", "shift", "squeeze", "shear", "stroke", "gaussian",
              "salt-pepper")
DEFAULT_OUT = "robustness"
CURVES_PNG = "robustness.png"
EXAMPLES_PNG = "robustness_examples.png"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "robustness", help="test accuracy under rotation, scale, shift, squeeze, shear, "
                           "stroke width and noise, one curve per distortion and model",
        description="Measure each model's test accuracy as a function of each distortion, "
                    "applied to the test digits before the model's preprocessing; several "
                    "models side by side. Writes robustness.json, robustness.png (the curves) "
                    "and robustness_examples.png (one digit under every distortion).")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_WEIGHTS",
                   help="run directories, .safetensors weights files or bundled weights' "
                        "names (e.g. lenet5)")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the JSON and PNGs (default: the first RUN_OR_WEIGHTS if it "
                        f"is a run directory, so `lenet report` shows them, else ./{DEFAULT_OUT})")
    p.add_argument("--only", nargs="+", metavar="KIND", choices=KIND_NAMES,
                   help=f"measure only these distortions (default: all): {' '.join(KIND_NAMES)}")
    p.add_argument("--limit", type=options.count, default=0, metavar="N",
                   help="the first N test digits only (default 0: all of them)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the noise distortions (default 0)")
    options.add_device(p)
    options.add_data_dir(p)
    options.add_json(p, "every curve, the models and the files written")
    p.set_defaults(handler=run)
    return p


def out_dir(args: argparse.Namespace) -> Path:
    """--out, else the first path when it is a run directory, else ./robustness."""
    if args.out:
        return Path(args.out)
    first = Path(args.paths[0])
    return first if first.is_dir() else Path(DEFAULT_OUT)


def run(args: argparse.Namespace) -> int:
    from lenet.storage import atomic

    out = out_dir(args)
    # Found out before minutes of measuring, not after.
    atomic.ensure_writable_dir(out, fix="choose another folder with --out")
    from lenet import data
    from lenet.analysis import robustness
    from lenet.analysis.figures import robustness_plots as figures
    from lenet.console import log, print_json

    result = robustness.measure_paths(args.paths, only=args.only, limit=args.limit,
                                      device=args.device, seed=args.seed,
                                      data_dir=args.data_dir, log=log)
    files = {"json": str(robustness.write_result(result, out))}
    figures.curves(result, out / CURVES_PNG,
                   title=f"test accuracy under distortion ({result['models'][0]['digits']:,} "
                         "test digits)")
    image = data.load(result["models"][0]["dataset"], "test", data_dir=args.data_dir)[0][0]
    grid = {k: v["values"] for k, v in result["kinds"].items()}
    figures.examples(image, grid, out / EXAMPLES_PNG, seed=args.seed)
    files |= {"curves": str(out / CURVES_PNG), "examples": str(out / EXAMPLES_PNG)}
    if args.json:
        print_json({**result, "files": files})
    else:
        print(robustness.format_table(result))
        print(f"\naccuracy (%) on {result['models'][0]['digits']:,} test digits; wrote "
              f"{', '.join(files.values())}")
    return 0
