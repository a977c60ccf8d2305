"""torch.optim classes without their torch.compile guards, for runs that never compile.

torch.optim wraps ``step`` (in ``_use_grad_for_differentiable``) and ``zero_grad``,
``add_param_group``, ``state_dict`` and ``load_state_dict`` (in ``torch._disable_dynamo``) so
that dynamo never traces them. Those wrappers import ``torch._dynamo`` the first time they run,
a visible share of a short training run's start-up that a run without ``compile`` has no use
for. ``functools.wraps`` keeps each wrapped function as ``__wrapped__``, and outside
torch.compile that function computes exactly what the guarded method does, with the same
state_dict (``tests/training/optim/test_eager.py`` checks both bit for bit).

PyTorch has no public switch for this (``torch.compiler.disable`` imports dynamo itself), so
this module depends on that private layout, on purpose and in this one place. When a torch
version does not wrap every one of these methods, :func:`eager` returns the class unchanged:
guarded, equally correct, only slower to start.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar, cast

import torch

GUARDED = ("step", "zero_grad", "add_param_group", "state_dict", "load_state_dict")

OptimizerT = TypeVar("OptimizerT", bound=torch.optim.Optimizer)

_CACHE: dict[type[torch.optim.Optimizer], type[torch.optim.Optimizer]] = {}


def eager(cls: type[OptimizerT]) -> type[OptimizerT]:
    """A subclass of `cls` whose :data:`GUARDED` methods are the plain functions torch wraps,
    or `cls` itself if this torch does not wrap them all. One class per `cls` (cached)."""
    if cls not in _CACHE:
        _CACHE[cls] = _unguarded(cls)
    return cast("type[OptimizerT]", _CACHE[cls])  # _unguarded(cls) is cls or a subclass of it


def _unguarded(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    raw = {name: inspect.unwrap(getattr(cls, name)) for name in GUARDED}
    if any(raw[name] is getattr(cls, name) for name in GUARDED):
        return cls  # something here is not wrapped as expected: keep torch's own methods
    raw_step = raw["step"]

    def step(self: torch.optim.Optimizer, closure: Callable[[], float] | None = None
             ) -> float | None:
        # What _use_grad_for_differentiable does besides its dynamo graph breaks.
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, closure)

    return type(cls.__name__, (cls,), {**raw, "step": step, "__qualname__": cls.__qualname__,
                                       "__doc__": cls.__doc__})
