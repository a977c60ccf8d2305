"""The model registry: every network lenet can train, by name.

A leaf: it imports no model. The family modules register theirs when :mod:`lenet.models` imports
them, so always go through ``lenet.models`` (``create``, ``names``, ``get_spec``).

A :class:`ModelSpec` carries what inference needs to agree with training (the input size and the
exact preprocessing), where the architecture comes from, and which recipe trains it, in the
spirit of torchvision's weight metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lenet.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from lenet.data.transforms import Preprocessing


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]  # keyword arguments reach the model's constructor
    preprocessing: Preprocessing
    source: str  # where the architecture comes from, for `lenet models`
    description: str
    loss: str = "cross-entropy"  # the training criterion the model was designed for
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise ConfigError(
            f"unknown model {name!r}; known models: {known} (see `lenet models`)"
        ) from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
