"""One readable hyperparameter block: :class:`TrainConfig`, its YAML recipes, and overrides.

Precedence (as in timm and Lightning): dataclass defaults < the recipe file < command-line flags.
The fully resolved config is saved with every run as ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from lenet.errors import ConfigError


@dataclass
class TrainConfig:
    model: str = "lenet5"
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"  # sgd | adam | adamw | sdlm
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    scheduler: str = "none"  # none | step | cosine | onecycle | milestones
    step_size: int = 3  # step: epochs between decays
    gamma: float = 0.1  # step/milestones: decay factor
    milestones: list[int] = dataclasses.field(default_factory=list)  # epochs where lr decays
    lr_values: list[float] = dataclasses.field(default_factory=list)  # milestones: lr per phase
    warmup_fraction: float = 0.25  # onecycle: fraction of steps spent warming up
    label_smoothing: float = 0.0
    loss: str = "auto"  # auto (the model's own) | cross-entropy | rbf-map | rbf-mle
    rbf_j: float = 1.0  # the constant j of the paper's Eq. 9 loss
    distort: bool = False  # random affine distortions per sample (the paper's, see data.distort)
    val_size: int = 0  # hold out this many training digits (seeded) for validation
    train_subset: int = 0  # train on the first N training digits only (0 = all); for quick runs
    test_subset: int = 0  # evaluate on the first N test digits only (0 = all)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    bf16: bool = False  # bf16 autocast for the forward pass
    channels_last: bool = False
    compile: bool = False  # torch.compile the training step
    eval_batch_size: int = 2000
    data_dir: str | None = None
    run_dir: str | None = None  # default: runs/<time>-<model>
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_CHOICES = {
    "optimizer": ("sgd", "adam", "adamw", "sdlm"),
    "scheduler": ("none", "step", "cosine", "onecycle", "milestones"),
    "loss": ("auto", "cross-entropy", "rbf-map", "rbf-mle"),
    "device": ("auto", "cpu", "cuda", "mps"),
}


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
    import yaml

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
    return {k.replace("-", "_"): v for k, v in data.items()}


def _coerce(name: str, value: Any, source: str) -> Any:
    f = _FIELDS[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
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
    config = TrainConfig(**values)
    _validate(config)
    return config


def _validate(c: TrainConfig) -> None:
    """Combinations that would otherwise fail deep inside torch with a traceback."""
    for name in ("epochs", "batch_size", "eval_batch_size", "step_size"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(c, name)}")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ConfigError(f"lr must be a positive number, got {c.lr}; for example --lr 0.01")
    for name in ("momentum", "weight_decay"):
        value = getattr(c, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be 0 or more, got {value}")
    if c.nesterov and c.optimizer == "sgd" and c.momentum <= 0:
        raise ConfigError(f"nesterov needs momentum > 0 (got momentum {c.momentum:g}); "
                          "pass --momentum 0.9, or drop --nesterov")
    if not (math.isfinite(c.gamma) and c.gamma > 0):
        raise ConfigError(f"gamma must be a positive decay factor, got {c.gamma}; e.g. 0.1")
    if not 0 <= c.warmup_fraction <= 1:
        raise ConfigError(f"warmup_fraction must be in [0, 1], got {c.warmup_fraction}")
    for name in ("val_size", "train_subset", "test_subset"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} must be 0 or more, got {getattr(c, name)}")
    if not 0 <= c.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {c.label_smoothing}")
    if c.scheduler == "milestones":
        if len(c.lr_values) != len(c.milestones) + 1:
            raise ConfigError("scheduler milestones needs len(lr_values) == len(milestones) + 1")
        if not all(math.isfinite(v) and v > 0 for v in c.lr_values):
            raise ConfigError(f"lr_values must all be positive, got {c.lr_values}")


def from_json(text: str, source: str) -> TrainConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source} is not valid JSON: {e}") from None
    known = {k: v for k, v in data.items() if k in _FIELDS}
    return TrainConfig(**known)
