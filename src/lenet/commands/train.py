"""`lenet train`: train a model and save the run; ``--resume`` continues one, ``--nproc N``
trains with N processes (DDP through torchrun's own launcher), ``--print-config`` shows the
recipe it would train and stops."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lenet.config.arguments import add_train_arguments

    p = sub.add_parser("train", help="train a model and save the run",
                       description="Train a model. Precedence: defaults < --config < flags.")
    add_train_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the results on stdout (logs go to stderr)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last intact checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --run-dir (its files are deleted first; a "
                        "folder holding other files is refused)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (DDP via torchrun on this machine)")
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved config (defaults < --config < flags) as YAML "
                        "and exit without training; the output is a recipe for --config")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    import yaml

    from lenet.config.arguments import from_train_args
    from lenet.console import debug, print_json
    from lenet.errors import ConfigError
    from lenet.training.loop import fit

    cfg = from_train_args(args)
    debug(f"resolved config: {cfg.to_dict()}")
    if args.print_config:
        # config sits below models and data (import layers): their names are checked here.
        from lenet.data.datasets import get_spec as dataset_spec
        from lenet.models import get_spec

        get_spec(cfg.model)
        dataset_spec(cfg.dataset)
        # The config as a YAML recipe on stdout, every key in TrainConfig's order; nothing is
        # trained, written or checked on disk beyond reading the recipe (and, with --resume,
        # the run's saved config).
        sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None))
        return 0
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from lenet.training.launch import relaunch_with_torchrun

        return relaunch_with_torchrun(args.nproc)
    if args.resume and args.overwrite:
        raise ConfigError("--overwrite replaces a run and --resume continues one: pass one of "
                          "them")
    result = fit(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    if args.json:
        print_json(result.summary())
    else:
        print(f"run saved in {result.run_dir}")
    return 0
