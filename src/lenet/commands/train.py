"""`lenet train`: train a model and save the run; ``--resume`` continues one, ``--nproc N``
trains with N processes (DDP through torchrun's own launcher), ``--print-config`` shows the
recipe it would train and stops."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lenet.config import add_train_arguments

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
    from lenet.config import resolve, resume_config, train_overrides
    from lenet.console import print_json
    from lenet.errors import ConfigError
    from lenet.training.trainer import train

    if args.print_config:
        return _print_config(args)
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch_with_torchrun(args.nproc)
    overrides = train_overrides(args)
    if args.resume:
        if args.overwrite:
            raise ConfigError("--overwrite replaces a run and --resume continues one: pass one "
                              "of them")
        result = train(resume_config(args.resume, args.config, overrides), resume=True)
    else:
        result = train(resolve(args.config, overrides), overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    if args.json:
        print_json(result.summary())
    else:
        print(f"run saved in {result.run_dir}")
    return 0


def _print_config(args: argparse.Namespace) -> int:
    """The config `lenet train` would run with these flags, as a YAML recipe on stdout: every
    key, in TrainConfig's order. Nothing is trained, written or checked on disk beyond reading
    the recipe (and, with --resume, the run's saved config)."""
    import yaml

    from lenet.config import resolve, resume_config, train_overrides

    overrides = train_overrides(args)
    cfg = (resume_config(args.resume, args.config, overrides) if args.resume
           else resolve(args.config, overrides))
    sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None))
    return 0


def _relaunch_with_torchrun(nproc: int) -> int:
    """`lenet train --nproc N ...` is `torchrun --standalone --nproc_per_node N -m lenet ...`.

    torchrun runs as a child process, as the `torchrun` command does, through
    :func:`torchrun_quietly`: a failed or interrupted rank then ends in its own one-line message
    (each rank prints it) instead of torchrun's traceback.
    """
    from lenet.runtime.device import threads_per_job

    rest: list[str] = []
    argv = iter(sys.argv[1:])
    for a in argv:
        if a == "--nproc":
            next(argv, None)  # drop its value too
        elif not a.startswith("--nproc="):
            rest.append(a)
    # Each process gets an equal share of the cores (torchrun's own default is one thread and a
    # warning); a value the user set is kept.
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(nproc)))
    code = "from lenet.commands.train import torchrun_quietly; raise SystemExit(torchrun_quietly())"
    cmd = [sys.executable, "-c", code, "--standalone", f"--nproc_per_node={nproc}",
           "-m", "lenet", *rest]
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the group got the same Ctrl-C: let the workers save and stop
        try:
            return proc.wait(timeout=120)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):  # a second Ctrl-C, or stuck
            proc.kill()
            return 130


def torchrun_quietly() -> int:
    """torchrun's launcher with its arguments from sys.argv; a failed or interrupted worker
    gives its exit code, without torchrun's traceback (the workers have said why)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    launch = get_args_parser().parse_args(sys.argv[1:])
    # torchrun's agent logs each failed worker at ERROR level; the workers have said why.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(launch)
    except SignalException as e:  # Ctrl-C or a kill: the workers said where they stopped
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode < 0:  # killed by a signal: no message of its own
            print(f"lenet: error: process {rank} of {launch.nproc_per_node} was killed by "
                  f"signal {-failure.exitcode}", file=sys.stderr)
            return 1
        return failure.exitcode
    return 0
