"""The learning rate as a function of the position in training (:class:`Schedule`), and
:func:`set_lr`, which hands it to the optimizer."""

from __future__ import annotations

import math

import torch

from lenet.config import TrainConfig

# Schedulers whose rate changes every step (the others change it between epochs).
PER_STEP_SCHEDULERS = ("cosine", "onecycle")


class Schedule:
    """Learning rate as a function of (epoch, step): per-epoch or per-step schedules alike.

    Being a pure function of the position, it needs no state of its own in a checkpoint.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.total = cfg.epochs * steps_per_epoch
        self.per_step = cfg.scheduler in PER_STEP_SCHEDULERS

    def lr(self, epoch: int, step: int) -> float:
        """epoch counts from 0; step is the global step."""
        c = self.cfg
        if c.scheduler == "step":
            return c.lr * c.gamma ** (epoch // c.step_size)
        if c.scheduler == "milestones":
            return c.lr_values[sum(epoch >= m for m in c.milestones)]
        if c.scheduler == "cosine":
            return 0.5 * c.lr * (1 + math.cos(math.pi * step / self.total))
        if c.scheduler == "onecycle":
            # Linear warm-up from lr/25 to lr, then linear decay to ~0 (airbench-style).
            warm = max(1, int(c.warmup_fraction * self.total))
            if step < warm:
                return c.lr * (0.04 + 0.96 * step / warm)
            return c.lr * max(0.0, (self.total - step) / max(1, self.total - warm))
        return c.lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
