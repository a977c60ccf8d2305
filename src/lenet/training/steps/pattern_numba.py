"""The ``lenet5-1998`` per-pattern SDLM step compiled with numba.

:class:`~lenet.training.steps.pattern.PatternStep` (the reference) spends a step on ~60 ATen calls,
each costing more in dispatch than in arithmetic at batch 1. This step computes the same
thing (the forward pass of :mod:`lenet.models.lenet1998`, the gradients of Eq. 8 / Eq. 9 by the
same chain rule, the SDLM update w_k <- w_k - ε_k ∂E/∂w_k with the optimizer's own ε_k) as
float32 loops (:mod:`lenet.training.steps.pattern_kernels`, which also describes their layout
and float semantics) over numpy views of the model's parameter tensors, updated in place, so a
checkpoint, ``weights.save`` or a resumed run sees exactly the tensors the trainer built.
Tests hold it to the reference and autograd at 1e-5.

Needs numba, imported at module level (by the kernels' module): the trainer imports this
module lazily and falls back to the reference when the import fails. The trainer calls
:meth:`NumbaPatternStep.warm` before its first timed epoch, which compiles the kernel (15-25 s
on a busy 2-core machine, once per CPU kind) or loads it from numba's on-disk cache (under a
second); the first kernel call of a process sets :data:`compile_seconds` either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeGuard, TypeVar

import numpy as np
import torch

from lenet.models import lenet1998
from lenet.models.lenet1998 import LeNet1998
from lenet.training.optim.sdlm import SDLM
from lenet.training.steps import pattern as pattern_step
from lenet.training.steps.pattern_kernels import (
    C3_TABLE,
    GO,
    N_PARAMS,
    NAMES,
    SQUASH_A,
    SQUASH_S,
    VIEWS,
    WS_SIZE,
    sequence,
    step,
)

LOSSES = pattern_step.LOSSES

compile_seconds: float | None = None  # this process's first step: compile or cache load

_P = ParamSpec("_P")
_R = TypeVar("_R")


def supports(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: str
             ) -> TypeGuard[LeNet1998]:
    """Whether :class:`NumbaPatternStep` computes what the reference step does for this setup:
    the reference's own conditions, on the CPU, every parameter contiguous and in the one
    param group, C3 wired as Table I."""
    if not pattern_step.supports(model, optimizer, loss):
        return False
    params = dict(model.named_parameters())
    held = {id(p) for p in optimizer.param_groups[0]["params"]}
    return (sorted(params) == sorted(NAMES) and {id(p) for p in params.values()} == held
            and all(p.device.type == "cpu" and p.is_contiguous() for p in params.values())
            and model.c3.table == C3_TABLE and same_constants())


def same_constants() -> bool:
    """Whether the kernels' copies of the network's constants (:mod:`.pattern_kernels`) are
    lenet1998's."""
    return (lenet1998.C3_TABLE == C3_TABLE
            and (lenet1998.SQUASH_A, lenet1998.SQUASH_S) == (SQUASH_A, SQUASH_S))


class NumbaPatternStep:
    """``step(x, y) -> (loss, scores)``, :class:`~lenet.training.steps.pattern.PatternStep`
    compiled: same arguments, same return values (fresh tensors each call), same in-place
    update of the model's parameters with ``optimizer.step_sizes``; ``.grad`` is not touched.
    """

    compiled = "numba"  # what the trainer names in its first line

    def __init__(self, model: LeNet1998, optimizer: SDLM, loss: str, rbf_j: float = 1.0) -> None:
        if not supports(model, optimizer, loss):
            raise ValueError("NumbaPatternStep needs a LeNet1998 on the CPU with contiguous "
                             "parameters, all in one SDLM param group, and an RBF loss "
                             f"({' or '.join(LOSSES)}), got loss {loss!r}")
        self.model, self.optimizer, self.loss, self.rbf_j = model, optimizer, loss, rbf_j
        named = dict(model.named_parameters())
        self._tensors = [named[n] for n in NAMES]
        self._ptrs = [p.data_ptr() for p in self._tensors]
        self._views = [_view(p, n) for p, n in zip(self._tensors, NAMES, strict=True)]
        self._codes = np.ascontiguousarray(model.output.codes.detach().numpy(), dtype=np.float32)
        self._ws = np.zeros(WS_SIZE, dtype=np.float32)
        self._grads = np.zeros(N_PARAMS, dtype=np.float32)
        self._steps = np.zeros(N_PARAMS, dtype=np.float32)
        self._steps_of: list[torch.Tensor] | None = None  # the list _steps was copied from

    def warm(self, chunk: bool = False) -> float:
        """Compile the kernel a run uses (``sequence`` for chunks of patterns, else ``step``),
        or load it from numba's cache, before the first timed step: the seconds taken. It runs
        on copies of the parameters and scratch buffers of the same types, so nothing of the
        model, the optimizer or this step changes."""
        global compile_seconds
        views = [v.copy() for v in self._views]
        ws, grads, steps = (np.zeros_like(a) for a in (self._ws, self._grads, self._steps))
        x, y = np.zeros((1, 1024), dtype=np.float32), np.zeros(1, dtype=np.int64)
        scores = np.empty((1, 10), dtype=np.float32)
        rbf_mle, rbf_j = self.loss == "rbf-mle", float(self.rbf_j)
        started = time.perf_counter()
        if chunk:
            sequence(x, y, rbf_mle, rbf_j, ws, grads, steps, scores,
                     np.empty(1, dtype=np.float32), self._codes, *views)
        else:
            step(x, y, rbf_mle, rbf_j, False, ws, grads, steps, scores, self._codes, *views)
        seconds = time.perf_counter() - started
        if compile_seconds is None:
            compile_seconds = seconds
        return seconds

    def _refresh(self, need_steps: bool = True) -> None:
        """Copy ε_k when SDLM recomputed them (new lr, mu or curvature: a new list); re-take
        the parameter views if a tensor's storage moved (``p.data = ...``)."""
        steps = self.optimizer.step_sizes(self.optimizer.param_groups[0]) if need_steps else None
        if steps is not None and steps is not self._steps_of:
            by_id = {id(p): s for p, s in zip(self.optimizer.param_groups[0]["params"], steps,
                                              strict=True)}
            flat = torch.cat([by_id[id(p)].detach().reshape(-1) for p in self._tensors])
            self._steps[:] = flat.numpy()
            self._steps_of = steps
        ptrs = [p.data_ptr() for p in self._tensors]
        if ptrs != self._ptrs:
            self._views = [_view(p, n) for p, n in zip(self._tensors, NAMES, strict=True)]
            self._ptrs = ptrs

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._refresh()
        return self._run(x, y, apply=True)

    def sequence(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``len(x)`` steps of one pattern each, in order (the paper's per-pattern updates):
        the same as calling the step on ``x[k:k+1], y[k:k+1]`` for each k, in one call.
        Returns each step's loss (n,) and scores (n, 10).

        The trainer hands it a few hundred patterns at a time: at ~100 µs a step, the ~50 µs
        that a Python-level step spends around the kernel (slicing, conversions, numba's
        argument checks, the loop's bookkeeping) would otherwise be a third of the pass."""
        self._refresh()
        n = x.shape[0]
        scores = np.empty((n, 10), dtype=np.float32)
        losses = np.empty(n, dtype=np.float32)
        _timed(sequence, self._pixels(x), y.numpy(), self.loss == "rbf-mle", float(self.rbf_j),
               self._ws, self._grads, self._steps, scores, losses, self._codes, *self._views)
        return torch.from_numpy(losses), torch.from_numpy(scores)

    def gradients(self, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss, scores and ∂loss/∂w per parameter name, no update: as
        :meth:`PatternStep.gradients <lenet.training.steps.pattern.PatternStep.gradients>`."""
        self._refresh(need_steps=False)
        loss, scores = self._run(x, y, apply=False)
        grads = {}
        for name, p, (at, rows, cols) in zip(NAMES, self._tensors, GO, strict=True):
            grads[name] = torch.from_numpy(self._grads[at:at + rows * cols].copy()).view_as(p)
        return loss, scores, grads

    def _run(self, x: torch.Tensor, y: torch.Tensor, apply: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = np.empty((x.shape[0], 10), dtype=np.float32)  # fresh: the trainer keeps them
        loss = _timed(step, self._pixels(x), y.numpy(), self.loss == "rbf-mle",
                      float(self.rbf_j), apply, self._ws, self._grads, self._steps, scores,
                      self._codes, *self._views)
        return torch.from_numpy(np.array(loss, dtype=np.float32)), torch.from_numpy(scores)

    @staticmethod
    def _pixels(x: torch.Tensor) -> np.ndarray:
        """The batch as the kernels read it, (n, 1024) float32, row-major: the cheapest
        conversions measured (µs each matter at ~100 µs a step)."""
        xs = (x.detach() if x.requires_grad else x).numpy().reshape(x.shape[0], 1024)
        if not xs.flags.c_contiguous or xs.dtype != np.float32:
            xs = np.ascontiguousarray(xs, dtype=np.float32)
        return xs


def _timed(kernel: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """kernel(*args); the process's first kernel call (compiling, or loading numba's cache)
    sets :data:`compile_seconds`."""
    global compile_seconds
    if compile_seconds is not None:
        return kernel(*args, **kwargs)
    started = time.perf_counter()
    result = kernel(*args, **kwargs)
    compile_seconds = time.perf_counter() - started
    return result


def _view(p: torch.Tensor, name: str) -> np.ndarray:
    """The numpy view (shared memory) of parameter ``name`` in the shape the kernel uses."""
    a = p.detach().numpy()
    return a.reshape(VIEWS[name]) if name in VIEWS else a
