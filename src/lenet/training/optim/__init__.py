"""Optimizers the 1998 paper uses that PyTorch does not ship, and what the trainer asks of them.

:class:`EpochHook` is the one hook the trainer calls beyond ``torch.optim.Optimizer``'s own
interface; :class:`~lenet.training.optim.sdlm.SDLM` implements it.
:mod:`lenet.training.optim.eager` gives the
torch optimizers of an eager run without their torch.compile guards.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from lenet.training.optim.sdlm import SDLM, gauss_newton_diagonal


@runtime_checkable
class EpochHook(Protocol):
    """An optimizer that prepares itself before every pass over the training data.

    The trainer calls :meth:`before_epoch` at the start of each epoch (not when it resumes in
    the middle of one) with a sample of the training digits it draws from the run's seeded
    epoch-order generator, so the preparation is part of the reproducible run.
    """

    def before_epoch(self, model: nn.Module, sample: tuple[torch.Tensor, torch.Tensor],
                     loss: str) -> None:
        """Prepare for the next pass; ``sample = (inputs, targets)``, ``loss`` a loss name
        from :mod:`lenet.models.losses`."""
        ...


__all__ = ["SDLM", "EpochHook", "gauss_newton_diagonal"]
