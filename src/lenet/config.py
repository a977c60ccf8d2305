"""One readable hyperparameter block: :class:`TrainConfig`, its YAML recipes, and overrides.

Precedence (as in timm and Lightning): dataclass defaults < the recipe file < command-line flags.
The fully resolved config is saved with every run as ``config.json``. Each key's help text and
allowed values live beside it in :class:`TrainConfig`; `lenet train`'s flags
(:func:`add_train_arguments`), `lenet sweep` and validation are generated from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lenet.errors import ConfigError
from lenet.storage import rundir


def _key(default: Any, help: str = "", *, choices: tuple[str, ...] = (), flag: bool = True,
         shown: str | None = None) -> Any:
    """A config key: its default, and for `lenet train` its flag's help and allowed values.

    ``flag=False`` keys are set with ``--set KEY=VALUE`` only. Lists get a fresh default each.
    `shown` is how ``--help`` states the default when the value itself would not say it (None
    standing for "chosen at run time")."""
    meta = {"help": help, "choices": choices, "flag": flag,
            "shown": str(default) if shown is None else shown}
    if isinstance(default, list):
        assert not default, "list keys start empty"
        return dataclasses.field(default_factory=list, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# Digits per evaluation batch. On a CPU a LeNet's intermediate maps for 512 digits stay in
# cache, where 2,000 digits' do not: the same outputs, bit for bit, in 0.5-0.6x the time
# (BENCHMARKS.md, issue 17); on a GPU the size hardly matters for a network this small.
EVAL_BATCH_SIZE = 512


@dataclass
class TrainConfig:
    model: str = _key("lenet5", "registry name (see `lenet models`)")
    dataset: str = _key("mnist", "mnist or fashion-mnist")
    epochs: int = _key(10, "passes over the training set")
    batch_size: int = _key(64, "global batch size")
    optimizer: str = _key("adam", "optimizer", choices=("sgd", "adam", "adamw", "sdlm"))
    lr: float = _key(0.01, "peak learning rate")
    momentum: float = _key(0.0, "SGD momentum")
    nesterov: bool = _key(False, "Nesterov momentum")
    weight_decay: float = _key(0.0, "L2 penalty")
    scheduler: str = _key("none", "learning-rate schedule",
                          choices=("none", "step", "cosine", "onecycle", "milestones"))
    step_size: int = _key(3, "step scheduler: epochs between decays")
    gamma: float = _key(0.1, "step scheduler: decay factor")
    milestones: list[int] = _key([], "milestones: epochs where lr changes", flag=False)
    lr_values: list[float] = _key([], "milestones: lr per phase", flag=False)
    warmup_fraction: float = _key(0.25, "onecycle: fraction of steps warming up", flag=False)
    label_smoothing: float = _key(0.0, "cross-entropy label smoothing")
    loss: str = _key("auto", "training criterion", shown="auto, the model's own",
                     choices=("auto", "cross-entropy", "rbf-map", "rbf-mle"))
    rbf_j: float = _key(1.0, "the constant j of the paper's Eq. 9 loss", flag=False)
    distort: bool = _key(False, "random affine distortions per sample")
    deslant: bool = _key(False, "deslant every digit (shear it upright from its second moments, "
                                "the 1998 paper's preprocessing); saved in the weights, so "
                                "evaluate, predict and serve deslant too")
    val_size: int = _key(0, "hold out N training digits (seeded) for validation, which picks "
                            "model_best.safetensors", shown="0, none")
    val_fraction: float = _key(0.0, "hold out this fraction (0 to 1) of the training digits "
                                    "instead of --val-size", shown="0, none")
    early_stop: int = _key(0, "stop after N epochs without a lower validation loss (needs "
                              "--val-size or --val-fraction)", shown="0, off")
    train_subset: int = _key(0, "train on the first N digits only", shown="0, all")
    test_subset: int = _key(0, "test on the first N digits only", shown="0, all")
    seed: int = _key(0, "the same seed (and --threads) gives bit-identical weights on CPU")
    device: str = _key("auto", "where to train: auto or a torch device (cpu, cuda:1, mps, xpu)")
    threads: int = _key(0, "intra-op CPU threads; 0: the cores free when the run starts "
                           "(OMP_NUM_THREADS, if set); the number used is saved in config.json "
                           "and --resume keeps it", shown="0, the free cores")
    precision: str = _key(
        "fp32", "forward-pass precision: fp32; bf16 autocast (fast only where the CPU has "
        "native bf16, AVX512-BF16 or AMX: elsewhere it is emulated and several times slower); "
        "fp16 autocast with a GradScaler (CUDA); auto: bf16 on a GPU that has it (else fp16), "
        "and on a CPU with native bf16 at large batches, else fp32",
        choices=("fp32", "bf16", "fp16", "auto"))
    bf16: bool = _key(False, "the same as --precision bf16 (kept for older scripts)")
    channels_last: bool = _key(False, "channels-last memory format")
    compile: bool = _key(False, "torch.compile the training step")
    step: str = _key("auto", "the training step: auto, the fastest that computes this run's "
                             "(lenet5's and lenet5-1998's compiled with numba where it is "
                             "installed); torch, autograd's (lenet5-1998: the hand-written torch "
                             "step), which differs from the compiled one by float rounding only",
                     choices=("auto", "torch"), flag=False)
    eval_batch_size: int = _key(EVAL_BATCH_SIZE, "digits per evaluation batch", flag=False)
    data_dir: str | None = _key(None, "where datasets live",
                                shown="$LENET_DATA_DIR, else ~/.cache/lenet")
    run_dir: str | None = _key(None, "where to save the run", shown="runs/<time>-<model>")
    tensorboard: bool = _key(True, "write TensorBoard event files", flag=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_CHOICES = {f.name: f.metadata["choices"] for f in fields(TrainConfig) if f.metadata["choices"]}
LIST_KEYS = frozenset(f.name for f in fields(TrainConfig) if f.default_factory is list)
# torch seeds are 64-bit; the distortion generator takes seed + 1.
MAX_SEED = 2**63 - 2
# Keys that may change when resuming: where and how long, never what is trained.
RESUME_OVERRIDABLE = frozenset({"epochs", "device", "data_dir", "tensorboard"})


def config_dir() -> Path:
    """The recipes shipped inside the package (``configs/`` in the repo links here)."""
    return Path(str(resources.files("lenet") / "configs"))


def find_recipe(name_or_path: str) -> Path:
    """A YAML path, or the name of a shipped recipe (``lenet5-fast``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; shipped recipes: {recipes()}")
        return path
    shipped = config_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"no config file or recipe named {name_or_path!r}; "
                          f"shipped recipes: {recipes()}")
    return shipped


def recipes() -> str:
    return ", ".join(sorted(p.stem for p in config_dir().glob("*.yaml")))


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys to values, "
                          f"got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config file {path}: key {bad[0]!r} is not a name; keys are config "
                          f"names such as epochs or lr (valid keys: {', '.join(_FIELDS)})")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _coerce(name: str, value: Any, source: str) -> Any:
    f = _FIELDS[name]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    kind = type(default)
    try:
        if value is None:
            if default is None or kind is str:
                return None if default is None else value
            raise ValueError("needs a value")
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"{value!r} is not a boolean")
                return low in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, list):
            items = value.split(",") if isinstance(value, str) else list(value)
            cast = int if name == "milestones" else float
            return [cast(v) for v in items]
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value!r} is not an integer")
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: invalid value {value!r} for {name!r} ({e})") from None


def resolve(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the recipe (a path or a shipped name), then non-None overrides."""
    values: dict[str, Any] = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if recipe is None and "model" in overrides:
        # `lenet train --model NAME` without --config trains with that model's own recipe.
        shipped = config_dir() / f"{overrides['model']}.yaml"
        if shipped.is_file():
            recipe = str(shipped)
    if recipe is None and "model" not in overrides:
        recipe = str(config_dir() / "lenet5.yaml")
    if recipe is not None:
        path = find_recipe(recipe)
        sources.append((f"config file {path}", read_recipe(path)))
    sources.append(("command line", overrides))
    for source, data in sources:
        for key, value in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"{source}: unknown key {key!r}; valid keys: "
                                  + ", ".join(_FIELDS))
            value = _coerce(key, value, source)
            if key in _CHOICES and value not in _CHOICES[key]:
                raise ConfigError(f"{source}: {key} must be one of {', '.join(_CHOICES[key])}, "
                                  f"got {value!r}")
            values[key] = value
    config = _with_precision(TrainConfig(**values))
    _validate(config)
    return config


def _with_precision(c: TrainConfig) -> TrainConfig:
    """`bf16: true` (the older spelling) is `precision: bf16`; the two must not disagree."""
    if c.bf16 and c.precision not in ("fp32", "bf16"):
        raise ConfigError(f"bf16 and precision {c.precision} disagree: give one of them "
                          "(--precision bf16 is --bf16)")
    if c.bf16 or c.precision == "bf16":
        return dataclasses.replace(c, precision="bf16", bf16=True)
    return c


def _validate(c: TrainConfig) -> None:
    """Combinations that would otherwise fail deep inside torch with a traceback."""
    for name in ("epochs", "batch_size", "eval_batch_size", "step_size"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(c, name)}")
    for name in ("val_size", "train_subset", "test_subset", "early_stop", "threads"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} must be 0 or more, got {getattr(c, name)}")
    _validate_validation(c)
    if not 0 <= c.seed <= MAX_SEED:
        shown = f"{c.seed:.6g}" if abs(c.seed) > 10**12 else str(c.seed)
        raise ConfigError(f"seed must be an integer from 0 to {MAX_SEED}, got {shown}")
    _validate_optimizer(c)
    _validate_schedule(c)


def _validate_validation(c: TrainConfig) -> None:
    """The held-out split, and early stopping, which needs one."""
    if not 0 <= c.val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {c.val_fraction}; e.g. 0.2 "
                          "holds out a fifth of the training digits")
    if c.val_size and c.val_fraction:
        raise ConfigError(f"val_size ({c.val_size}) and val_fraction ({c.val_fraction:g}) both "
                          "set the validation split: give one of them")
    if c.early_stop and not (c.val_size or c.val_fraction):
        raise ConfigError(f"early_stop {c.early_stop} watches the validation loss, and there is "
                          "no validation split: add --val-size N or --val-fraction F")


def val_count(c: TrainConfig, train_digits: int) -> int:
    """How many of `train_digits` training digits `c` holds out for validation (0: none)."""
    return c.val_size or round(c.val_fraction * train_digits)


def _validate_optimizer(c: TrainConfig) -> None:
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ConfigError(f"lr must be a positive number, got {c.lr}; for example --lr 0.01")
    for name in ("momentum", "weight_decay"):
        value = getattr(c, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be 0 or more, got {value}")
    if c.nesterov and c.optimizer == "sgd" and c.momentum <= 0:
        raise ConfigError(f"nesterov needs momentum > 0 (got momentum {c.momentum:g}); "
                          "pass --momentum 0.9, or drop --nesterov")
    if not 0 <= c.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {c.label_smoothing}")


def _validate_schedule(c: TrainConfig) -> None:
    if not (math.isfinite(c.gamma) and c.gamma > 0):
        raise ConfigError(f"gamma must be a positive decay factor, got {c.gamma}; e.g. 0.1")
    if not 0 <= c.warmup_fraction <= 1:
        raise ConfigError(f"warmup_fraction must be in [0, 1], got {c.warmup_fraction}")
    if c.scheduler == "milestones":
        if len(c.lr_values) != len(c.milestones) + 1:
            raise ConfigError("scheduler milestones needs len(lr_values) == len(milestones) + 1")
        if not all(math.isfinite(v) and v > 0 for v in c.lr_values):
            raise ConfigError(f"lr_values must all be positive, got {c.lr_values}")

# --------------------------------------------------------------------------- command line
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
                   help="do not write TensorBoard event files (default: they are written)")
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
    return resolve(None, saved)
