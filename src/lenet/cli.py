"""The `lenet` command line. Each subcommand imports what it needs, so `lenet --help` is instant.

User mistakes (a bad flag value, a missing file, a corrupt download) print one clear message and
exit with status 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lenet import __version__
from lenet.errors import LenetError

Handler = Callable[[argparse.Namespace], int]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------- train
# Flags that map one-to-one onto TrainConfig fields: (flag, field, type, help).
_TRAIN_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--model", "model", str, "registry name (see `lenet models`)"),
    ("--dataset", "dataset", str, "mnist or fashion-mnist"),
    ("--epochs", "epochs", int, "passes over the training set"),
    ("--batch-size", "batch_size", int, "global batch size"),
    ("--optimizer", "optimizer", str, "sgd, adam, adamw or sdlm"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--momentum", "momentum", float, "SGD momentum"),
    ("--weight-decay", "weight_decay", float, "L2 penalty"),
    ("--scheduler", "scheduler", str, "none, step, cosine, onecycle or milestones"),
    ("--step-size", "step_size", int, "step scheduler: epochs between decays"),
    ("--gamma", "gamma", float, "step scheduler: decay factor"),
    ("--label-smoothing", "label_smoothing", float, "cross-entropy label smoothing"),
    ("--loss", "loss", str, "auto, cross-entropy, rbf-map or rbf-mle"),
    ("--seed", "seed", int, "the same seed gives bit-identical weights on CPU"),
    ("--device", "device", str, "auto, cpu, cuda or mps"),
    ("--val-size", "val_size", int, "hold out N training digits for validation"),
    ("--train-subset", "train_subset", int, "train on the first N digits only"),
    ("--test-subset", "test_subset", int, "test on the first N digits only"),
    ("--data-dir", "data_dir", str, "where datasets live (default $LENET_DATA_DIR or cache)"),
    ("--run-dir", "run_dir", str, "where to save the run (default runs/<time>-<model>)"),
]
_TRAIN_SWITCHES: list[tuple[str, str, str]] = [
    ("--nesterov", "nesterov", "Nesterov momentum"),
    ("--bf16", "bf16", "bf16 autocast for the forward pass"),
    ("--channels-last", "channels_last", "channels-last memory format"),
    ("--compile", "compile", "torch.compile the training step"),
    ("--distort", "distort", "random affine distortions per sample"),
]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and save the run",
                       description="Train a model. Precedence: defaults < --config < flags.")
    p.add_argument("--config", help="YAML recipe: a path or a shipped name such as lenet5-fast")
    for flag, dest, kind, help_ in _TRAIN_FLAGS:
        p.add_argument(flag, dest=dest, type=kind, default=None, help=help_)
    for flag, dest, help_ in _TRAIN_SWITCHES:
        p.add_argument(flag, dest=dest, action="store_const", const=True, default=None,
                       help=help_)
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=False,
                   default=None, help="do not write TensorBoard event files")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set warmup_fraction=0.2")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the results on stdout (logs go to stderr)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last intact checkpoint")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (DDP via torchrun on this machine)")
    p.set_defaults(handler=_cmd_train)


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides that parsed `lenet train` arguments ask for (None = not given)."""
    from lenet.errors import ConfigError

    overrides = {dest: getattr(args, dest) for _, dest, *_ in _TRAIN_FLAGS + _TRAIN_SWITCHES}
    overrides["tensorboard"] = args.tensorboard
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


# Keys that may change when resuming: where and how long, never what is trained.
_RESUME_OVERRIDABLE = {"epochs", "device", "data_dir", "tensorboard"}


def _cmd_train(args: argparse.Namespace) -> int:
    from lenet.config import resolve
    from lenet.train import train

    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch_with_torchrun(args.nproc)
    overrides = train_overrides(args)
    if args.resume:
        cfg = _resume_config(args.resume, args.config, overrides)
        result = train(cfg, resume=True)
    else:
        result = train(resolve(args.config, overrides))
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    if args.json:
        _print_json(result.summary())
    else:
        print(f"run saved in {result.run_dir}")
    return 0


def _resume_config(run_dir: str, config: str | None, overrides: dict[str, Any]):
    from pathlib import Path

    from lenet.config import resolve
    from lenet.errors import ConfigError

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: no config.json there; is it a run directory "
                          "made by `lenet train`?")
    given = {k for k, v in overrides.items() if v is not None}
    if config or given - _RESUME_OVERRIDABLE:
        bad = sorted(given - _RESUME_OVERRIDABLE) + (["config"] if config else [])
        raise ConfigError(f"--resume continues the saved config; drop {', '.join(bad)} "
                          f"(only {', '.join(sorted(_RESUME_OVERRIDABLE))} may change)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the saved config ({e})") from None
    saved.update({k: v for k, v in overrides.items() if v is not None})
    saved["run_dir"] = str(run_dir)
    return resolve(None, saved)


def _relaunch_with_torchrun(nproc: int) -> int:
    """`lenet train --nproc N ...` is `torchrun --standalone --nproc_per_node N -m lenet ...`.

    torchrun runs as a child process, as the `torchrun` command does, through
    :func:`_torchrun_quietly`: a failed or interrupted rank then ends in its own one-line message
    (each rank prints it) instead of torchrun's traceback.
    """
    import subprocess

    from lenet.device import threads_per_job

    rest: list[str] = []
    args = iter(sys.argv[1:])
    for a in args:
        if a == "--nproc":
            next(args, None)  # drop its value too
        elif not a.startswith("--nproc="):
            rest.append(a)
    # Each process gets an equal share of the cores (torchrun's own default is one thread and a
    # warning); a value the user set is kept.
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(nproc)))
    code = "from lenet.cli import _torchrun_quietly; raise SystemExit(_torchrun_quietly())"
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


def _torchrun_quietly() -> int:
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


# --------------------------------------------------------------------------- evaluate, report
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from lenet.viz.commands import add_evaluate_options, run_evaluate

    p = sub.add_parser("evaluate", help="accuracy, per-class scores, confusion matrix and "
                       "misclassified digits of a saved run or weights file")
    add_evaluate_options(p)
    p.set_defaults(handler=run_evaluate)


def _add_viz(sub: argparse._SubParsersAction) -> None:
    from lenet.viz.commands import add_parsers

    add_parsers(sub)  # `report` and `compare`


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    from lenet.sweep import add_parser

    add_parser(sub)


# --------------------------------------------------------------------------- models, summary
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_models)
    s = sub.add_parser("summary", help="layer table: output shapes, parameters, connections")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=_cmd_summary)


def _cmd_models(args: argparse.Namespace) -> int:
    from lenet.models import count_parameters, get_spec, names

    rows = []
    for name in names():
        spec = get_spec(name)
        rows.append({"name": name, "params": count_parameters(spec.build()),
                     "input_size": spec.input_size, "loss": spec.loss,
                     "description": spec.description, "source": spec.source})
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'name':<16}{'params':>10}  {'input':<7} description")
    for r in rows:
        size = f"{r['input_size']}x{r['input_size']}"
        print(f"{r['name']:<16}{r['params']:>10,}  {size:<7} {r['description']}")
        print(f"{'':<35}source: {r['source']}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from lenet.summary import format_summary, summary_dict

    d = summary_dict(args.model)
    _print_json(d) if args.json else print(format_summary(d))
    return 0


# --------------------------------------------------------------------------- data
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{fetch,info}")
    f = dsub.add_parser("fetch", help="download and verify a dataset (mnist by default)")
    f.add_argument("name", nargs="?", default="mnist")
    f.add_argument("--data-dir")
    f.set_defaults(handler=_cmd_data_fetch)
    i = dsub.add_parser("info", help="location, counts, label histogram, checksum status")
    i.add_argument("name", nargs="?", help="one dataset (default: all)")
    i.add_argument("--data-dir")
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=_cmd_data_info)


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from lenet import data

    path = data.fetch(args.name, data_dir=args.data_dir)
    print(f"{args.name}: verified files in {path}")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from lenet import data

    names = [args.name] if args.name else list(data.DATASETS)
    infos = [data.info(n, data_dir=args.data_dir) for n in names]
    if args.json:
        _print_json(infos)
        return 0
    for d in infos:
        print(_format_info(d))
    return 0


def _format_info(d: dict[str, Any]) -> str:
    lines = [f"{d['name']}: {d['location']}"]
    for file, status in d.get("files", {}).items():
        lines.append(f"  {file:<26} {status}")
    samples, hist = d.get("samples") or {}, d.get("label_histogram") or {}
    if not samples:
        lines.append(f"  not fetched yet: run `lenet data fetch {d['name']}`")
        return "\n".join(lines)
    splits = list(samples)
    lines.append(f"  {'class':<14}" + "".join(f"{s:>9}" for s in splits))
    classes = next(iter(hist.values()), {})
    for c in classes:
        lines.append(f"  {c:<14}" + "".join(f"{hist[s].get(c, 0):>9,}" for s in splits))
    lines.append(f"  {'total':<14}" + "".join(f"{samples[s]:>9,}" for s in splits))
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lenet", description="LeNet-5, faithful and fast: train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"lenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_evaluate, _add_viz, _add_models, _add_data, _add_sweep):
        add(sub)
    from lenet import bench, export, paper, predict, serve

    for module in (predict, export, serve):
        module.add_parsers(sub)
    paper.add_parser(sub)
    bench.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except LenetError as e:
        rank = os.environ.get("RANK", "0")  # set by torchrun (`--nproc`)
        where = "" if rank == "0" else f" (process {rank})"
        sys.stderr.write(f"lenet: error{where}: {e}\n")  # one write: ranks share stderr
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130
