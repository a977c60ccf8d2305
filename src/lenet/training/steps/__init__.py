"""The training step, ``step(x, y) -> (loss, scores)``: one update of the model on a batch.

Every kind of step lenet has is one :class:`StepKind` in :data:`KINDS`, fastest first, each with
its own ``supports(model, optimizer, cfg)`` test; a run trains with the first kind that supports
it (:func:`choose`). ``step: torch`` in the config passes over the kinds compiled with numba.

- ``lenet5-numba``: ``lenet5``'s step compiled with numba (:mod:`.lenet5_numba`), any batch;
  faster than autograd's (BENCHMARKS.md); the run's torch optimizer applies the update.
- ``pattern-numba``, ``pattern``: the 1998 network's per-pattern step with SDLM, its gradients
  written out by hand (:mod:`.pattern`), which at batch 1 skips autograd's per-step graph;
  compiled with numba where installed (:mod:`.pattern_numba`, ~9x faster), which at batch 1
  takes a chunk of :data:`PATTERN_CHUNK` patterns per call.
- ``autograd``: every other run, and every run with ``compile`` (torch.compile) or a precision
  other than fp32 (bf16/fp16 autocast, fp16 with a GradScaler).

On the CPU at batch 4 or less every step runs under :func:`_native_conv`. With several
processes the model a step trains is DistributedDataParallel's
(:meth:`lenet.training.distributed.Distributed.wrap`), which no kind but autograd supports.
numba is an extra (``lenet[fast]``): its modules are imported only where a kind is asked about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import torch
from torch import nn

from lenet.config import TrainConfig
from lenet.models import get_spec
from lenet.models.lenet5 import LeNet5
from lenet.models.lenet1998 import LeNet1998
from lenet.models.losses import Loss
from lenet.training.optim.sdlm import SDLM
from lenet.training.schedule import PER_STEP_SCHEDULERS
from lenet.training.steps import pattern

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Supports = Callable[[nn.Module, torch.optim.Optimizer, TrainConfig], bool]

# Patterns per call of the compiled per-pattern step: a divisor of the CPU's account_every
# (256), so bookkeeping and a stop request still fall on its boundaries.
PATTERN_CHUNK = 256


@dataclass(frozen=True)
class Parts:
    """What a step is built from."""

    model: nn.Module  # the module that trains (DDP's wrapper with several processes)
    optimizer: torch.optim.Optimizer
    loss_fn: Loss
    loss_name: str
    cfg: TrainConfig
    device: torch.device
    precision: str  # fp32, bf16 or fp16 (lenet.runtime.device.pick_precision)


@dataclass(frozen=True)
class Built:
    """A built step. A `sequence` step takes up to `chunk` steps' batches in one call and
    returns one loss per step (the loop then calls it once per chunk)."""

    fn: Step
    chunk: int = 1
    sequence: bool = False
    # Compiles a numba step's kernels (or loads them from numba's cache) without stepping: the
    # trainer calls it before the first timed epoch, so compiling never shows as a slow epoch.
    warm: Callable[[], float] | None = None


@dataclass(frozen=True)
class StepKind:
    name: str
    supports: Supports
    build: Callable[[Parts], Built]
    numba: bool = False  # lenet's own step compiled with numba: `step: torch` passes over it
    fp32_only: bool = False  # computes the fp32 step only: another precision takes autograd's
    # Beats torch's bf16 on a CPU with AVX512-BF16 but no AMX, so that `precision: auto` keeps
    # fp32 for it there (lenet.runtime.device.pick_precision, BENCHMARKS.md).
    keeps_fp32: bool = False


def loss_name(cfg: TrainConfig) -> str:
    """The criterion `cfg` trains with: its ``loss``, or for ``auto`` the model's own."""
    return get_spec(cfg.model).loss if cfg.loss == "auto" else cfg.loss


def choose(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> StepKind:
    """The first kind of :data:`KINDS` that supports this run (``step: torch``: of those not
    compiled with numba); autograd's supports every run."""
    return next(kind for kind in KINDS
                if (cfg.step == "auto" or not kind.numba) and kind.supports(model, optimizer, cfg))


def build(kind: StepKind, parts: Parts) -> Built:
    """`kind`'s step for this run (autograd's where `kind` computes fp32 only and the run's
    precision is another)."""
    if kind.fp32_only and parts.precision != "fp32":
        kind = AUTOGRAD
    built = kind.build(parts)
    if built.sequence or parts.device.type != "cpu" or parts.cfg.batch_size > 4:
        return built
    return replace(built, fn=_native_conv(built.fn))


def _native_conv(fn: Step) -> Step:
    def native_conv_step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-pattern training: at batch 1 oneDNN's per-call overhead dominates the tiny
        # convolutions, and ATen's native kernels make a LeNet step faster (the switch covers
        # forward and backward, both of which run inside `fn`). Ops this small gain nothing
        # from intra-op threads, and on a busy CPU a waiting second thread makes every op
        # several times slower, so one thread (restored when train() returns).
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        enabled = torch.backends.mkldnn.enabled
        # torch types the flag as its descriptor; assigning a bool is its documented switch.
        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        try:
            return fn(x, y)
        finally:
            torch.backends.mkldnn.enabled = enabled

    return native_conv_step


# --------------------------------------------------------------------------- autograd
def _build_autograd(p: Parts) -> Built:
    """Forward (autocast to bf16/fp16 when asked), the loss in fp32, backward, the update."""
    model, optimizer, loss_fn, device = p.model, p.optimizer, p.loss_fn, p.device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(p.precision)
    # fp16's narrow range underflows small gradients: scale the loss (CUDA only, see device).
    scaler = torch.amp.GradScaler(device.type) if p.precision == "fp16" else None

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            scores = model(x)
        loss = loss_fn(scores.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss, scores

    return Built(torch.compile(step) if p.cfg.compile else step)


AUTOGRAD = StepKind("autograd", lambda model, optimizer, cfg: True, _build_autograd)


# --------------------------------------------------------------------------- lenet5, numba
def _lenet5_numba_supports(model: nn.Module, optimizer: torch.optim.Optimizer,
                           cfg: TrainConfig) -> bool:
    # The cheap checks first: importing numba costs a process ~0.2-0.3 s, which a run of
    # another model (or a DDP-wrapped one) should not pay; lenet5_numba.supports then checks
    # the layers themselves.
    if (not isinstance(model, LeNet5) or _device_type(model) != "cpu" or cfg.compile
            or cfg.optimizer == "sdlm"):
        return False
    try:
        from lenet.training.steps import lenet5_numba  # noqa: PLC0415  (extra: numba)
    except ImportError:  # numba is optional (lenet[fast]), or too old/new for this numpy
        return False
    return lenet5_numba.supports(model, optimizer, loss_name(cfg))


def _build_lenet5_numba(p: Parts) -> Built:
    """It runs on the threads torch was given, and torch itself then gets one: a second OpenMP
    thread still spinning after torch's own small ops (the update, the batch gathering) slowed
    the step's threads (BENCHMARKS.md). The loop's evaluation gives torch the run's threads
    back for the test passes."""
    from lenet.training.steps.lenet5_numba import (  # noqa: PLC0415  (extra: numba)
        NumbaLeNet5Step,
    )

    model = cast(LeNet5, p.model)  # lenet5_numba.supports checked it
    step = NumbaLeNet5Step(model, p.optimizer, p.cfg.label_smoothing,
                           threads=torch.get_num_threads())
    torch.set_num_threads(1)
    return Built(step, warm=step.warm)


LENET5_NUMBA = StepKind("lenet5-numba", _lenet5_numba_supports, _build_lenet5_numba,
                        numba=True, fp32_only=True, keeps_fp32=True)


# --------------------------------------------------------------------------- per pattern
def _pattern_supports(model: nn.Module, optimizer: torch.optim.Optimizer,
                      cfg: TrainConfig) -> bool:
    return not cfg.compile and pattern.supports(model, optimizer, loss_name(cfg))


def _pattern_numba_supports(model: nn.Module, optimizer: torch.optim.Optimizer,
                            cfg: TrainConfig) -> bool:
    if not _pattern_supports(model, optimizer, cfg):
        return False
    try:
        from lenet.training.steps import pattern_numba  # noqa: PLC0415  (extra: numba)
    except ImportError:  # numba is optional (lenet[fast]), or too old/new for this numpy
        return False
    return pattern_numba.supports(model, optimizer, loss_name(cfg))


def _build_pattern(p: Parts) -> Built:
    # pattern.supports checked the model and the optimizer.
    model, optimizer = cast(LeNet1998, p.model), cast(SDLM, p.optimizer)
    return Built(pattern.PatternStep(model, optimizer, p.loss_name, p.cfg.rbf_j))


def _build_pattern_numba(p: Parts) -> Built:
    from lenet.training.steps.pattern_numba import (  # noqa: PLC0415  (extra: numba)
        NumbaPatternStep,
    )

    model, optimizer = cast(LeNet1998, p.model), cast(SDLM, p.optimizer)
    step = NumbaPatternStep(model, optimizer, p.loss_name, p.cfg.rbf_j)
    if p.cfg.batch_size == 1 and p.cfg.scheduler not in PER_STEP_SCHEDULERS:
        # One rate for a whole chunk.
        return Built(step.sequence, PATTERN_CHUNK, sequence=True,
                     warm=lambda: step.warm(chunk=True))
    return Built(step, warm=step.warm)


PATTERN_NUMBA = StepKind("pattern-numba", _pattern_numba_supports, _build_pattern_numba,
                         numba=True, fp32_only=True)
PATTERN = StepKind("pattern", _pattern_supports, _build_pattern, fp32_only=True)

KINDS = (LENET5_NUMBA, PATTERN_NUMBA, PATTERN, AUTOGRAD)


def _device_type(model: nn.Module) -> str:
    return next(model.parameters()).device.type
