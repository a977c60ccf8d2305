"""One readable hyperparameter block: :class:`TrainConfig`, its YAML recipes, and overrides.

Precedence (as in timm and Lightning): dataclass defaults < the recipe file < command-line flags.
The fully resolved config is saved with every run as ``config.json``. Each key's help text and
allowed values live beside it in :class:`TrainConfig`; `lenet train`'s flags
(:mod:`lenet.config.arguments`), `lenet sweep` and validation are generated from them. Recipe
files are read within limits by :mod:`lenet.config.recipes`; every value is then coerced to its
key's type strictly (a list is not a bool) and bounded here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from dataclasses import dataclass, fields
from importlib import util
from typing import Any

from lenet.config.recipes import (
    MAX_LIST,
    config_dir,
    find_recipe,
    read_recipe,
    shipped_recipe,
)
from lenet.config.recipes import show as _show
from lenet.errors import ConfigError
from lenet.runtime.environment import MAX_THREADS


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
    realistic: bool = _key(False, "random distortions for real input per sample, as "
                                  "photos and scans look after preprocessing: elastic and "
                                  "affine, pen width, blur, ink, paper, ruled lines, noise, "
                                  "JPEG (lenet.data.realistic); instead of --distort")
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
    init_weights: str | None = _key(
        None, "start from these weights (fine-tuning): bundled ones by name or arch.tag "
        "(lenet5, lenet5.mnist), a run dir or a .safetensors file, of the same model; layers "
        "whose shapes differ start fresh", shown="none, a fresh initialization")
    tensorboard: bool = _key(True, "write TensorBoard event files", flag=False,
                             shown="true where tensorboard is installed")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_CHOICES = {f.name: f.metadata["choices"] for f in fields(TrainConfig) if f.metadata["choices"]}
LIST_KEYS = frozenset(f.name for f in fields(TrainConfig) if f.default_factory is list)
# torch seeds are 64-bit; the distortion generator takes seed + 1.
MAX_SEED = 2**63 - 2
# Keys that may change when resuming: where and how long, never what is trained.
RESUME_OVERRIDABLE = frozenset({"epochs", "device", "data_dir", "tensorboard"})


def _did_you_mean(word: Any, options: Any = None) -> str:
    """" (did you mean 'epochs'?)" when one of `options` (default: the config keys) is close."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word.replace("-", "_"), list(options or _FIELDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(name: str, value: Any, source: str) -> Any:
    """`value` as key `name`'s type, strictly: a bool is true/false (or yes/no, 1/0), an int a
    whole number (not a bool, not 2.5), a float a finite number, a list a list (or a
    comma-separated string) of those; a list is never a bool, nor a bool a number."""
    f = _FIELDS[name]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    try:
        if value is None:
            if default is None:  # data_dir, run_dir: None is "the default place"
                return None
            raise ValueError("needs a value")
        if isinstance(default, bool):
            return _as_bool(value)
        if isinstance(default, list):
            return _as_list(name, value)
        if isinstance(default, int):
            return _as_int(value)
        if isinstance(default, float):
            return _as_float(value)
        return _as_str(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise ConfigError(f"{source}: invalid value {_show(value)} for {name!r} ({e})") from None


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", list: "a list",
            dict: "a mapping", str: "a string"}.get(type(value), f"a {type(value).__name__}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a boolean; use true or false")
    raise TypeError(f"expected true or false, got {_kind(value)}")


_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected a whole number, got a boolean")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not (math.isfinite(number) and number.is_integer()):
            raise ValueError(f"{value!r} is not an integer")
        return int(number)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected a whole number, got {_kind(value)}")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, (numbers.Real, str)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    raise TypeError(f"expected a number, got {_kind(value)}")


def _as_list(name: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        items: list[Any] = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise TypeError(f"expected a list, got {_kind(value)}")
    if len(items) > MAX_LIST:
        raise ValueError(f"{len(items)} items, more than {MAX_LIST}")
    cast = _as_int if name == "milestones" else _as_float
    return [cast(v) for v in items]


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)  # a run dir or device index written as a bare number
    raise TypeError(f"expected a string, got {_kind(value)}")


def resolve(recipe: str | None = None, overrides: dict[str, Any] | None = None, *,
            source: str = "command line") -> TrainConfig:
    """Defaults, then the recipe (a path or a shipped name), then non-None overrides (named
    `source` in errors)."""
    values: dict[str, Any] = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if recipe is None and "model" in overrides:
        # `lenet train --model NAME` without --config trains with that model's own recipe.
        shipped = shipped_recipe(overrides["model"])
        if shipped is not None:
            recipe = str(shipped)
    if recipe is None and "model" not in overrides:
        recipe = str(config_dir() / "lenet5.yaml")
    if recipe is not None:
        path = find_recipe(recipe)
        sources.append((f"config file {path}", read_recipe(path)))
    sources.append((source, overrides))
    for source, data in sources:
        for key, value in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"{source}: unknown key {_show(key)}{_did_you_mean(key)}; "
                                  f"valid keys: {', '.join(_FIELDS)}")
            value = _coerce(key, value, source)
            if key in _CHOICES and value not in _CHOICES[key]:
                raise ConfigError(f"{source}: {key} must be one of {', '.join(_CHOICES[key])}, "
                                  f"got {_show(value)}{_did_you_mean(value, _CHOICES[key])}")
            values[key] = value
    # On by default where it is installed; asked for without it, the run says so once.
    values.setdefault("tensorboard", tensorboard_installed())
    config = _with_precision(TrainConfig(**values))
    _validate(config)
    return config


def tensorboard_installed() -> bool:
    """Whether the tensorboard extra is installed (found, not imported: that is slow)."""
    try:
        return util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):  # a finder that refuses it, a half-removed module
        return False


def _with_precision(c: TrainConfig) -> TrainConfig:
    """`bf16: true` (the older spelling) is `precision: bf16`; the two must not disagree."""
    if c.bf16 and c.precision not in ("fp32", "bf16"):
        raise ConfigError(f"bf16 and precision {c.precision} disagree: give one of them "
                          "(--precision bf16 is --bf16)")
    if c.bf16 or c.precision == "bf16":
        return dataclasses.replace(c, precision="bf16", bf16=True)
    return c


# Upper bounds of the counts, where the machine is: far above any real run, and below what
# would make torch allocate terabytes or a loop run for ages; threads: see MAX_THREADS.
MAX_COUNT = 10**9  # digits: subsets, validation split, batch sizes
MAX_EPOCHS = 10**6
MAX_RBF_J = 1000.0  # Eq. 9's e^-j: past this it is 0 in float32 anyway
_THREADS_FIX = f" (this machine has {os.cpu_count()} cores; 0 picks the free ones)"


def _validate(c: TrainConfig) -> None:
    """Combinations that would otherwise fail deep inside torch with a traceback."""
    for name, low, high in [("epochs", 1, MAX_EPOCHS), ("batch_size", 1, MAX_COUNT),
                            ("eval_batch_size", 1, MAX_COUNT), ("step_size", 1, MAX_EPOCHS),
                            ("val_size", 0, MAX_COUNT), ("train_subset", 0, MAX_COUNT),
                            ("test_subset", 0, MAX_COUNT), ("early_stop", 0, MAX_EPOCHS),
                            ("threads", 0, MAX_THREADS)]:
        value = getattr(c, name)
        if value < low:
            more = "at least 1" if low else "0 or more"
            raise ConfigError(f"{name} must be {more}, got {_show(value)}")
        if value > high:
            raise ConfigError(f"{name} must be at most {high:,}, got {_show(value)}"
                              + _THREADS_FIX * (name == "threads"))
    if not all(0 <= m <= MAX_EPOCHS for m in c.milestones):
        raise ConfigError(f"milestones must be epochs from 0 to {MAX_EPOCHS:,}, got "
                          f"{_show(c.milestones)}")
    if not 0 <= c.rbf_j <= MAX_RBF_J:
        raise ConfigError(f"rbf_j must be from 0 to {MAX_RBF_J:g} (Eq. 9's constant j; the "
                          f"shipped recipes use 1.0), got {c.rbf_j:g}")
    _validate_validation(c)
    if c.distort and c.realistic:
        raise ConfigError("distort and realistic both distort the training digits (realistic "
                          "includes distort's affine maps): give one of them")
    if not 0 <= c.seed <= MAX_SEED:
        shown = (_show(c.seed) if c.seed.bit_length() > 1000 else
                 f"{c.seed:.6g}" if abs(c.seed) > 10**12 else str(c.seed))
        raise ConfigError(f"seed must be an integer from 0 to {MAX_SEED}, got {shown}")
    _validate_optimizer(c)
    _validate_schedule(c)
    if c.init_weights is not None and not (0 < len(c.init_weights) <= 4096
                                           and "\0" not in c.init_weights):
        raise ConfigError(f"init_weights must name bundled weights (lenet5, lenet5.mnist), a run "
                          f"directory or a .safetensors file, got {_show(c.init_weights)}")


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

