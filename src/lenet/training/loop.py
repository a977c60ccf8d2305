"""The training loop: :func:`fit` trains `cfg.model` on `cfg.dataset` and saves the run.

Read it top to bottom: :func:`fit` sets the device and threads up and claims the run directory;
:func:`_setup` puts the data on the device and builds the model, its optimizer and the
generators; the :class:`~lenet.training.run.Run` resumes from its newest intact checkpoint (if
asked) and writes its start; :func:`_start` wraps the model for DDP and chooses the step
(:mod:`lenet.training.steps`); then once per epoch :func:`_run_epoch`: :func:`_begin_epoch` (the
epoch's order), :func:`_steps` (with :func:`_settle` adding up the queued sums every few steps)
and :func:`_end_epoch` (evaluation, the metrics row, the checkpoint); and last :func:`_finish`
(the final weights and the result). Every write goes through the run object.

Training is device-resident (:mod:`lenet.training.batches`): one randperm per epoch, batches
by indexing. ``early_stop`` stops after that many epochs without a new low of the validation
loss, counted from the history (:func:`lenet.storage.history.select`), so a resumed run stops
exactly as an uninterrupted one. Ctrl-C or SIGTERM finishes the step, writes a checkpoint and
stops (:mod:`lenet.training.signals`); ``lenet train --resume RUN_DIR`` continues it
bit-identically on CPU.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process trains on its own shard of each
global batch under DistributedDataParallel (:mod:`lenet.training.distributed`); only rank 0
logs and writes.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import torch

from lenet import console
from lenet.analysis.evaluate import EvalResult, evaluate_tensors
from lenet.config import TrainConfig
from lenet.console import Log
from lenet.models import count_parameters, get_spec
from lenet.models.losses import Loss, make_loss
from lenet.runtime.device import pick, pick_precision
from lenet.runtime.threads import default_threads, threads
from lenet.storage import rundir
from lenet.storage.history import EpochMetrics, select
from lenet.training import steps
from lenet.training.batches import Data, Split, load_data
from lenet.training.distributed import Distributed
from lenet.training.optim import EpochHook, make_optimizer
from lenet.training.progress import epoch_bar, epoch_line, interactive
from lenet.training.result import RunResult, TrainingError
from lenet.training.run import Run, claimed
from lenet.training.schedule import Schedule, set_lr
from lenet.training.signals import Stop, TrainingInterrupted, stop_on_signals


def fit(cfg: TrainConfig, log: Log | None = None, progress: bool | None = None,
        resume: bool = False, overwrite: bool = False) -> RunResult:
    """Train `cfg.model` on `cfg.dataset`, evaluate it on the test set, save the run.

    `cfg.run_dir` must be new or empty (:func:`lenet.storage.rundir.claim`); `overwrite` first
    deletes an earlier run's files there. With ``resume=True`` it must be an earlier run's
    directory: training continues from its newest intact checkpoint of that run (or from the
    start if it has none).
    """
    dist = Distributed.from_env()
    if log is None:
        log = console.log if dist.is_main else console.silent
    progress = (interactive() and dist.is_main) if progress is None else progress
    t_start = time.perf_counter()
    device = dist.setup(pick(cfg.device))
    # The cores free now, unless --threads or OMP_NUM_THREADS say; the count changes the order
    # of float sums, so it is saved with the config and a resume keeps it. The count from
    # before is restored at the end (per-pattern training uses one).
    wanted = (cfg.threads or default_threads()) if device.type == "cpu" else None
    finished = False
    try:
        with threads(wanted) as count:
            if device.type == "cpu":
                cfg = replace(cfg, threads=count)
            with claimed(cfg, dist, resume, overwrite) as (path, run_id):
                setup = _setup(cfg, log, device, dist, path, run_id)
                run = setup.run
                # From the newest intact checkpoint of this run, if asked and there is one.
                resumed = resume and run.resume(setup.steps)
                run.start(resumed)
                loop = _start(setup, device, dist, progress)
                test: EvalResult | None = None
                with stop_on_signals() as stop:
                    for epoch in range(run.epoch, cfg.epochs):
                        if _patience_spent(run):
                            break
                        test = _run_epoch(loop, epoch, stop)
                result = _finish(loop, test, t_start)
                finished = True
                return result
    finally:
        dist.close(finished)


@dataclass
class _Setup:
    """What a run trains with, built before its directory is written."""

    run: Run
    data: Data
    steps: int  # per epoch
    params: int
    loss_fn: Loss
    eval_loss_fn: Loss


@dataclass
class _Loop:
    """What every epoch reads: the run, the data, and how it steps (fixed by :func:`_start`)."""

    run: Run
    data: Data
    device: torch.device
    dist: Distributed
    progress: bool
    params: int
    eval_loss_fn: Loss
    step_fn: steps.Step
    # Steps per call of step_fn: 1, or for the compiled per-pattern step (batch 1) a run of
    # patterns in one call (lenet.training.steps), which then returns one loss per step.
    chunk: int
    schedule: Schedule
    steps: int  # per epoch
    seen: int  # digits trained on per epoch
    # Per-step bookkeeping (loss sum, hits, the finiteness check, DDP's stop vote) is batched:
    # every step only queues its loss and predictions, and every `account_every` steps one
    # stacked check and sum settles them. At batch 1 a per-step check is a visible share of
    # the paper's recipe; on an accelerator each check is also a sync. A non-finite loss is
    # still reported at its exact step, and no checkpoint is written in between.
    account_every: int


@dataclass
class _Epoch:
    """The epoch in progress: its order, where it starts, and its running sums."""

    index: int  # counts from 0
    first: int  # the first step to run (> 0 when resuming mid-epoch)
    order_state: torch.Tensor
    perm: torch.Tensor
    loss_sum: torch.Tensor
    correct: torch.Tensor
    started: float
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def progress(self) -> dict[str, object]:
        """What a mid-epoch checkpoint keeps of it (a MidEpoch when read back)."""
        return {"order_state": self.order_state.tolist(), "loss_sum": float(self.loss_sum),
                "correct": int(self.correct)}


def _setup(cfg: TrainConfig, log: Log, device: torch.device, dist: Distributed, path: Path,
           run_id: str) -> _Setup:
    """Seed, put the data on the device, build the model, its optimizer and the generators."""
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.model)
    loss_name = steps.loss_name(cfg)
    loss_fn = make_loss(loss_name, label_smoothing=cfg.label_smoothing, rbf_j=cfg.rbf_j)
    eval_loss_fn = make_loss(loss_name, rbf_j=cfg.rbf_j)
    prep = replace(spec.preprocessing, deslant=True) if cfg.deslant else spec.preprocessing
    data = load_data(cfg, prep, device)
    n_steps = data.steps_per_epoch(cfg.batch_size, dist.world)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    # torch's stub of Module.to leaves out memory_format, which it takes.
    model = spec.build().to(device, memory_format=memory_format)  # type: ignore[call-overload]
    optimizer = make_optimizer(cfg, model)
    gens = {"order": torch.Generator().manual_seed(cfg.seed),
            "augment": torch.Generator(device=device).manual_seed(cfg.seed + 1)}
    run = Run(cfg, path, run_id, dist.is_main, log, model, optimizer, gens, prep, loss_name)
    return _Setup(run, data, n_steps, count_parameters(model), loss_fn, eval_loss_fn)


def _start(setup: _Setup, device: torch.device, dist: Distributed, progress: bool) -> _Loop:
    """Wrap the model for DDP, choose the step (lenet.training.steps), say what is trained,
    and fix how every epoch steps."""
    run, cfg = setup.run, setup.run.cfg
    train_model = dist.wrap(run.model, device)
    n, bs = len(setup.data.train.labels), cfg.batch_size
    n_steps = setup.steps
    kind = steps.choose(train_model, run.optimizer, cfg)
    # The compiled lenet5 step is fp32, and beats bf16 on some CPUs (device.pick_precision).
    precision, note = pick_precision(cfg.precision, device, bs, compiled_fp32=kind.keeps_fp32)
    if note and run.main:
        run.log(note)
    n_threads = torch.get_num_threads()
    built = steps.build(kind, steps.Parts(train_model, run.optimizer, setup.loss_fn,
                                          run.loss_name, cfg, device, precision))
    if run.epoch == 0 and run.resume_at is None:
        compiled = getattr(getattr(built.fn, "__self__", built.fn), "compiled", None)
        named = f", step compiled with {compiled}" if compiled else ""
        on_threads = (f" ({n_threads} thread{'s' if n_threads != 1 else ''}{named})"
                      if device.type == "cpu" else "")
        run.log(f"training {cfg.model} ({setup.params:,} parameters) on {cfg.dataset}: {n:,} "
                f"digits, {console.plural(cfg.epochs, 'epoch')}, batch {bs}, {cfg.optimizer} "
                f"lr {cfg.lr:g}, {precision}, device {device}{on_threads}"
                + (f" x {dist.world} processes" if dist.world > 1 else "")
                + f"; run dir {run.run_dir}")
    _warm(built, run)
    return _Loop(run, setup.data, device, dist, progress, setup.params, setup.eval_loss_fn,
                 built.fn, built.chunk, Schedule(cfg, n_steps), n_steps, min(n, n_steps * bs),
                 256 if device.type == "cpu" else 64)


def _warm(built: steps.Built, run: Run) -> None:
    """Compile a numba step (or load it from numba's cache) now, before any epoch's clock
    starts: a first epoch that compiles would read as a slow epoch in every speed figure."""
    if built.warm is None:
        return
    seconds = built.warm()
    if seconds >= 1.0 and run.main:
        run.log(f"compiled the training step with numba in {seconds:.1f} s (once per CPU kind: "
                "numba caches it on disk); no epoch's time includes it")


def _run_epoch(loop: _Loop, epoch: int, stop: Stop) -> EvalResult:
    """One pass over the training digits (the rest of one when resuming mid-epoch), then its
    evaluation, metrics row and checkpoint; returns the test result."""
    run = loop.run
    ep = _begin_epoch(loop, epoch)
    stopped_at = _steps(loop, ep, stop)
    if stopped_at is not None:
        run.train_seconds += time.perf_counter() - ep.started
        path = run.save(epoch, stopped_at, ep.progress())
        _interrupted(run, f"at epoch {epoch + 1}, step {stopped_at}", path, stop.signum)
    return _end_epoch(loop, ep, stop)


def _begin_epoch(loop: _Loop, epoch: int) -> _Epoch:
    run, device = loop.run, loop.device
    started = time.perf_counter()
    run.model.train()
    at, run.resume_at = run.resume_at, None
    order = run.gens["order"]
    if at is not None:
        # Re-create this epoch's order from the generator state saved at its start.
        order.set_state(torch.tensor(at.order_state, dtype=torch.uint8))
    elif isinstance(run.optimizer, EpochHook):
        # SDLM re-estimates its per-parameter step sizes on a sample before every pass.
        run.optimizer.before_epoch(run.model, loop.data.sample(run.gens), run.loss_name)
    order_state = order.get_state()
    perm = torch.randperm(len(loop.data.train.labels), generator=order).to(device)
    loss_sum = torch.tensor(at.loss_sum if at else 0.0, dtype=torch.float64, device=device)
    correct = torch.tensor(at.correct if at else 0, dtype=torch.long, device=device)
    return _Epoch(epoch, at.step if at else 0, order_state, perm, loss_sum, correct, started)


def _steps(loop: _Loop, ep: _Epoch, stop: Stop) -> int | None:
    """Run the epoch's steps from `ep.first`. Returns None when the epoch is done, or the steps
    done so far when a signal stopped it early (its sums settled)."""
    run, dist, schedule, step_fn = loop.run, loop.dist, loop.schedule, loop.step_fn
    bs, total, augment, step = run.cfg.batch_size, loop.steps, run.gens["augment"], run.step
    bar = epoch_bar(total, f"epoch {ep.index + 1}/{run.cfg.epochs}", loop.progress, ep.first)
    try:
        for k in range(ep.first, total, loop.chunk):
            end = min(k + loop.chunk, total)  # steps k .. end - 1 in this call
            x, y = loop.data.batch(dist.shard(ep.perm[k * bs:end * bs]), augment)
            if schedule.per_step or k == ep.first:
                set_lr(run.optimizer, schedule.lr(ep.index, step))
            loss, scores = step_fn(x, y)
            ep.pending.append((loss.detach(), scores.detach().argmax(1), y))
            step += end - k
            settle = end // loop.account_every != k // loop.account_every
            if settle:
                _settle(loop, ep, last_step=end - 1)
            if bar is not None:
                bar.update(end - k)
            # DDP ranks vote on stopping (a collective) only when they settle.
            if ((settle or dist.world == 1) and _should_stop(stop, dist, loop.device)
                    and end < total):
                _settle(loop, ep, last_step=end - 1)
                return end
        _settle(loop, ep, last_step=total - 1)
        return None
    finally:
        run.step = step
        if bar is not None:
            bar.close()


def _settle(loop: _Loop, ep: _Epoch, last_step: int) -> None:
    """Add the pending steps' (mean loss, predictions, labels) to the epoch's sums, in place.

    `last_step` is the 0-based index in the epoch of the last pending step. A non-finite loss
    raises TrainingError naming the epoch and the exact step where it first appeared.
    """
    pending = ep.pending
    if not pending:
        return
    losses = torch.cat([loss.reshape(-1) for loss, _, _ in pending])  # one per step
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        step = last_step + 1 - (len(losses) - 1 - first)
        rate = loop.schedule.lr(ep.index, ep.index * loop.steps + step - 1)
        raise _diverged(loop.run, f"{float(losses[first])} at epoch {ep.index + 1}, step "
                                  f"{step}", rate)
    sizes = torch.tensor([size for loss, _, y in pending
                          for size in [len(y) // loss.numel()] * loss.numel()],
                         dtype=torch.float64, device=losses.device)
    ep.loss_sum += (losses.double() * sizes).sum()
    hits = torch.cat([p for _, p, _ in pending]) == torch.cat([y for _, _, y in pending])
    ep.correct += hits.sum()
    pending.clear()


def _end_epoch(loop: _Loop, ep: _Epoch, stop: Stop) -> EvalResult:
    """Sum the ranks, check the loss, evaluate, log and save the finished epoch."""
    run, cfg = loop.run, loop.run.cfg
    loop.dist.all_sum(ep.loss_sum, ep.correct)
    train_loss = float(ep.loss_sum) / loop.seen
    if not math.isfinite(train_loss):
        raise _diverged(run, f"{train_loss} in epoch {ep.index + 1}",
                        loop.schedule.lr(ep.index, ep.index * loop.steps))
    seconds = time.perf_counter() - ep.started
    run.train_seconds += seconds
    test = _evaluate(loop, loop.data.test)
    val = _evaluate(loop, loop.data.val) if loop.data.val is not None else None
    m = EpochMetrics(ep.index + 1, train_loss, int(ep.correct) / loop.seen, test.accuracy,
                     test.loss, val.accuracy if val is not None else None,
                     val.loss if val is not None else None,
                     loop.schedule.lr(ep.index, ep.index * loop.steps),
                     time.perf_counter() - ep.started,
                     (loop.seen - ep.first * cfg.batch_size) / seconds)
    run.log(epoch_line(m, cfg.epochs))
    run.end_epoch(m)
    if _should_stop(stop, loop.dist, loop.device) and ep.index + 1 < cfg.epochs:
        _interrupted(run, f"after epoch {ep.index + 1}", None, stop.signum)
    return test


def _finish(loop: _Loop, test: EvalResult | None, t_start: float) -> RunResult:
    """Save the final weights, close TensorBoard, and report."""
    run = loop.run
    if test is None:  # resumed a run whose last epoch had already finished
        test = _evaluate(loop, loop.data.test)
    result = RunResult(run.cfg, run.run_dir, loop.params, test, run.train_seconds, run.history,
                       run.model.eval())
    run.finish(test.accuracy, {k: v for k, v in result.summary().items()
                               if k in ("test_accuracy", "test_loss", "best_val_accuracy",
                                        "train_seconds")})
    chosen = select(run.history)
    if chosen.best_epoch is not None:
        run.log(f"best validation accuracy {chosen.best_val_accuracy:.4f} at epoch "
                f"{chosen.best_epoch}: {run.run_dir / rundir.BEST}")
    run.log(f"test accuracy {test.accuracy:.4f} ({console.plural(test.errors, 'error')} of "
            f"{test.total}), {run.train_seconds:.1f}s training, "
            f"{time.perf_counter() - t_start:.1f}s in all; saved {run.run_dir / rundir.WEIGHTS}")
    return result


def _evaluate(loop: _Loop, split: Split) -> EvalResult:
    """Evaluate on the run's threads (a compiled step may have left torch one)."""
    wanted = loop.run.cfg.threads if loop.device.type == "cpu" else None
    with threads(wanted):
        return evaluate_tensors(loop.run.model, split.x, split.labels, loop.eval_loss_fn,
                                loop.run.cfg.eval_batch_size)


def _should_stop(stop: Stop, dist: Distributed, device: torch.device) -> bool:
    if dist.world == 1:
        return stop.is_set()
    # On the training device: NCCL reduces CUDA tensors only.
    flag = torch.tensor([1.0 if stop.is_set() else 0.0], device=device)
    dist.all_sum(flag)  # every rank stops at the same step, or none does
    return bool(flag.item())


def _patience_spent(run: Run) -> bool:
    """Whether `early_stop` epochs have passed without a new low of the validation loss."""
    patience = run.cfg.early_stop
    chosen = select(run.history)
    if not patience or chosen.stale_epochs < patience:
        return False
    run.log(f"early stop after epoch {run.epoch}: the validation loss has not fallen for "
            f"{chosen.stale_epochs} epoch{'s' if chosen.stale_epochs > 1 else ''} "
            f"(--early-stop {patience})")
    return True


def _diverged(run: Run, where: str, rate: float) -> TrainingError:
    """The loss became NaN or infinite: where, at which learning rate, what is kept."""
    c = run.cfg
    setting = f"--lr {c.lr:g}"
    if c.scheduler == "milestones":
        setting = f"lr_values {', '.join(f'{v:g}' for v in c.lr_values)}"
    elif c.scheduler != "none":
        setting += f" with the {c.scheduler} schedule"
    kept = (f"The last good checkpoint is kept: {run.last_checkpoint}"
            if run.last_checkpoint is not None else "No checkpoint had been written yet")
    return TrainingError(f"the training loss became {where}, at learning rate {rate:g}; try a "
                         f"lower learning rate (now {setting}). {kept}")


def _interrupted(run: Run, where: str, saved: Path | None, signum: int) -> NoReturn:
    """Stop on a signal: say where, and how to resume (checkpoint `saved` written just now)."""
    written = f"checkpoint {saved}\n" if saved is not None else ""
    run.log(f"interrupted {where}; {written}resume with: lenet train --resume {run.run_dir}")
    raise TrainingInterrupted(f"training stopped by {signal.Signals(signum).name}; resume with "
                              f"`lenet train --resume {run.run_dir}`", signum)
