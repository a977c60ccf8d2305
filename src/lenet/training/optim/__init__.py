"""The run's optimizer (:func:`make_optimizer`), the optimizers the 1998 paper uses that PyTorch
does not ship, and what the trainer asks of them.

:class:`EpochHook` is the one hook the trainer calls beyond ``torch.optim.Optimizer``'s own
interface; :class:`~lenet.training.optim.sdlm.SDLM` implements it.
:mod:`lenet.training.optim.eager` gives the
torch optimizers of an eager run without their torch.compile guards.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from lenet.config import TrainConfig
from lenet.training.optim.eager import eager
from lenet.training.optim.sdlm import SDLM, gauss_newton_diagonal
from lenet.training.result import TrainingError

OptimizerT = TypeVar("OptimizerT", bound=torch.optim.Optimizer)


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


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused kernels update every parameter in one call instead of one small op per tensor;
    # for a 10-tensor model that per-op overhead is a visible share of each step.
    # (None, torch's default, elsewhere.)
    fused = True if params and params[0].device.type in ("cpu", "cuda") else None
    if cfg.optimizer == "sgd":
        return _class(torch.optim.SGD, cfg)(params, lr=cfg.lr, momentum=cfg.momentum,
                                            nesterov=cfg.nesterov,
                                            weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adam":
        return _class(torch.optim.Adam, cfg)(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                             fused=fused)
    if cfg.optimizer == "adamw":
        return _class(torch.optim.AdamW, cfg)(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                              fused=fused)
    if cfg.optimizer == "sdlm":
        return SDLM(params, lr=cfg.lr, rbf_j=cfg.rbf_j, seed=cfg.seed)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}")


def _class(cls: type[OptimizerT], cfg: TrainConfig) -> type[OptimizerT]:
    # torch.compile needs torch's guarded optimizer methods; an eager run skips them.
    return cls if cfg.compile else eager(cls)


def state_keys(cfg: TrainConfig) -> tuple[str, ...]:
    """The per-parameter state the optimizer of `cfg` keeps (what its checkpoint must hold)."""
    if cfg.optimizer == "sgd":
        return ("momentum_buffer",) if cfg.momentum else ()
    if cfg.optimizer == "sdlm":
        return ("h",)
    return ("step", "exp_avg", "exp_avg_sq")  # adam, adamw


__all__ = ["SDLM", "EpochHook", "gauss_newton_diagonal", "make_optimizer", "state_keys"]
