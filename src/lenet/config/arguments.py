"""`lenet train`'s config flags, generated from :class:`lenet.config.TrainConfig`, and the
config a parsed command line asks for (a recipe with flags over it, or a resumed run's own)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from lenet.config import RESUME_OVERRIDABLE, TrainConfig, resolve
from lenet.errors import ConfigError
from lenet.storage import rundir


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The config flags of `lenet train` on `p`: ``--config``, one flag per :class:`TrainConfig`
    key that has one (the rest through ``--set KEY=VALUE``), and ``--no-tensorboard``. Every
    default is None ("not given"), so that :func:`train_overrides` changes only what was asked."""
    p.add_argument("--config", help="YAML recipe: a path or a shipped name such as lenet5-fast; "
                                     "its values replace the defaults shown below (default: "
                                     "the --model's own recipe, else lenet5)")
    keys = p.add_argument_group(
        "config keys", "Each default shown is TrainConfig's; the recipe in use (--config, or "
        "the default one) may set its own, and a flag given here wins over both.")
    for f in fields(TrainConfig):
        if not f.metadata["flag"]:
            continue
        flag = "--" + f.name.replace("_", "-")
        # The flags' own defaults stay None ("not given"); the help states TrainConfig's.
        text = f"{f.metadata['help']} (default: {f.metadata['shown']})".replace("%", "%%")
        if isinstance(f.default, bool):
            keys.add_argument(flag, dest=f.name, action="store_const", const=True,
                              default=None, help=text)
            continue
        choices = f.metadata["choices"]
        keys.add_argument(flag, dest=f.name, type=str if f.default is None else type(f.default),
                          default=None, help=text,
                          metavar="{" + ",".join(choices) + "}" if choices else None)
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=False,
                   default=None,
                   help="do not write TensorBoard event files (default: they are written where "
                        "tensorboard is installed)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set warmup_fraction=0.2")


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides that parsed :func:`add_train_arguments` flags ask for (None: not
    given); ``--set`` items come last and win."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.metadata["flag"]}
    overrides["tensorboard"] = args.tensorboard
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


def from_train_args(args: argparse.Namespace) -> TrainConfig:
    """The config that `lenet train`'s parsed flags ask for: the recipe with the flags over it,
    or with ``--resume`` the saved config of that run with the flags it allows changed."""
    overrides = train_overrides(args)
    if args.resume:
        return resume_config(args.resume, args.config, overrides)
    return resolve(args.config, overrides)


def resume_config(run_dir: str, recipe: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """The saved config of `run_dir`, with only :data:`RESUME_OVERRIDABLE` keys changed:
    a resumed run trains exactly what it started training."""
    saved = rundir.read_config(run_dir, required=True)
    saved.pop(rundir.RUN_ID, None)  # the run's identity, not a training key
    given = {k for k, v in overrides.items() if v is not None}
    bad = sorted(given - RESUME_OVERRIDABLE) + (["config"] if recipe else [])
    if bad:
        raise ConfigError(f"--resume continues the saved config; drop {', '.join(bad)} "
                          f"(only {', '.join(sorted(RESUME_OVERRIDABLE))} may change)")
    saved.update({k: v for k, v in overrides.items() if v is not None})
    saved["run_dir"] = str(run_dir)
    return resolve(None, saved, source=f"{Path(run_dir) / rundir.CONFIG} or the command line")
