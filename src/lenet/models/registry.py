"""The model registry: every network lenet can train, by name.

A leaf: it imports no model. The family modules register theirs when :mod:`lenet.models` imports
them, so always go through ``lenet.models`` (``create``, ``names``, ``get_spec``).

A :class:`ModelSpec` describes an architecture, not a weights file: how to build it, the
preprocessing and the loss it was designed for (the defaults ``lenet train`` starts from), and
where it comes from. What a particular set of weights was trained with is that file's
:class:`~lenet.models.metadata.WeightsMeta`, which training writes and inference reads: a
spec's preprocessing never stands in for a file's (only its input size is checked against it,
by :func:`lenet.models.hub.check_weights`).
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
    preprocessing: Preprocessing  # the input it takes: what training records in WeightsMeta
    source: str  # where the architecture comes from, for `lenet models`
    description: str
    loss: str = "cross-entropy"  # the criterion `--loss auto` trains it with
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
