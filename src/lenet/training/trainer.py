"""The trainer: the whole dataset on the device, one randperm per epoch, batches by indexing.

No DataLoader and no per-sample Python in the hot path: the digits are loaded once as uint8,
preprocessed once on the device (or per batch when distortions are on), and every batch is a
gather from that tensor. A run leaves its run directory behind (:mod:`lenet.storage.rundir`): the
resolved config, one metrics row per epoch, the weights at the start and the end (with the
preprocessing and the final test accuracy in their metadata), the last two checkpoints (from
which ``lenet train --resume RUN_DIR`` continues bit-identically on CPU) and TensorBoard event
files (``tensorboard --logdir runs``).

Model selection is honest: the test set is evaluated every epoch (a curve in metrics.csv) but
never chooses anything. With a validation split (``val_size`` or ``val_fraction``, carved from
the training digits) ``model_best.safetensors`` holds the epoch with the best validation
accuracy, ties going to the lower validation loss (:func:`select`), and ``early_stop``
stops after that many epochs without a new low of the validation loss. Both are recomputed from
the metrics history, so a resumed run chooses and stops exactly as an uninterrupted one.

One process owns a run directory while it trains (:func:`lenet.storage.rundir.claim`): a new or
empty
folder, or with ``--resume`` its own run, whose id (``run_id`` in config.json) every checkpoint
carries; ``--resume`` skips a checkpoint of another run, or one that does not fit the model and
optimizer being trained, as it skips a damaged one. Trouble with the file system while writing
the run is one :class:`~lenet.storage.rundir.RunDirError` line.

:func:`train` runs in phases over one :class:`_Run` state: :func:`_setup` (data, model,
optimizer, generators), :func:`_resume` (the newest intact checkpoint, if asked),
:func:`_start` (the run directory, DDP, the step function), :func:`_run_epoch` once per epoch,
and :func:`_finish` (the final weights and the result).

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process trains on its own shard of each
global batch under DistributedDataParallel; only rank 0 logs and writes.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import torch
from torch import nn

from lenet import console
from lenet.analysis.evaluate import EvalResult, evaluate_tensors
from lenet.config import TrainConfig, val_count
from lenet.console import Log
from lenet.errors import ConfigError, LenetError, WeightsError
from lenet.models import count_parameters, get_spec, weights
from lenet.models.losses import make_loss
from lenet.runtime.device import default_threads, pick, pick_precision
from lenet.storage import checkpoint, rundir
from lenet.training.optim import EpochHook
from lenet.training.optim.eager import eager

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class TrainingError(LenetError):
    """Training cannot go on (for example the loss became NaN)."""


class TrainingInterrupted(LenetError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed.

    Its exit code is the shell's for the signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""

    exit_code = 130

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    val_accuracy: float | None
    val_loss: float | None
    lr: float
    seconds: float
    images_per_s: float


METRICS_COLUMNS = tuple(f.name for f in fields(EpochMetrics))


def _metrics(row: dict[str, Any]) -> EpochMetrics:
    """A checkpoint's history row (one from before val_loss was recorded has none)."""
    return EpochMetrics(**{"val_loss": None, **row})


@dataclass(frozen=True)
class Selection:
    """What the validation split has chosen after some epochs (all None without one)."""

    best_epoch: int | None  # the epoch whose weights model_best.safetensors holds
    best_val_accuracy: float | None
    best_val_loss: float | None
    stale_epochs: int  # epochs since the validation loss last reached a new low


def select(history: list[EpochMetrics]) -> Selection:
    """The best epoch on validation: the highest validation accuracy, a tie going to the lower
    validation loss, then to the earlier epoch; and the epochs since the validation loss last
    fell (what ``early_stop`` counts). The test columns are never read."""
    best: EpochMetrics | None = None
    low, stale = math.inf, 0
    for m in history:
        if m.val_accuracy is None:
            continue
        if best is None or (m.val_accuracy, -_loss(m)) > (best.val_accuracy, -_loss(best)):
            best = m
        if _loss(m) < low:
            low, stale = _loss(m), 0
        else:
            stale += 1
    if best is None:
        return Selection(None, None, None, 0)
    return Selection(best.epoch, best.val_accuracy, best.val_loss, stale)


def _loss(m: EpochMetrics) -> float:
    """The validation loss, infinite when unknown (a row from an older lenet)."""
    return math.inf if m.val_loss is None else m.val_loss


@dataclass
class RunResult:
    config: TrainConfig
    run_dir: Path
    params: int
    test: EvalResult
    train_seconds: float
    history: list[EpochMetrics] = field(default_factory=list)
    model: nn.Module | None = None  # the trained model (final weights, eval mode)

    @property
    def metrics(self) -> dict[str, Any]:
        """:meth:`summary`: the run's figures, as `lenet train --json` prints them."""
        return self.summary()

    def summary(self) -> dict[str, Any]:
        epochs = len(self.history)
        chosen = select(self.history)
        return {
            "model": self.config.model,
            "dataset": self.config.dataset,
            "epochs": epochs,
            "test_accuracy": self.test.accuracy,
            "test_loss": self.test.loss,
            "test_errors": self.test.errors,
            # The final model's; the best epoch is chosen on validation (select), never on test.
            "val_accuracy": self.history[-1].val_accuracy if self.history else None,
            "val_loss": self.history[-1].val_loss if self.history else None,
            "best_val_accuracy": chosen.best_val_accuracy,
            "best_epoch": chosen.best_epoch,
            "early_stopped": epochs < self.config.epochs,
            "train_seconds": self.train_seconds,
            "seconds_per_epoch": self.train_seconds / max(epochs, 1),
            "params": self.params,
            "run_dir": str(self.run_dir),
        }


@dataclass
class Split:
    """A split on the device: uint8 digits, and their preprocessed float inputs when fixed."""

    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64
    inputs: torch.Tensor | None = None  # (N, 1, H, W) float, absent when distorting per batch


def load_splits(cfg: TrainConfig, device: torch.device) -> tuple[Split, Split | None, Split]:
    """Train, optional validation (seeded, carved from the training set) and test splits."""
    from lenet import data

    train_x, train_y = data.load(cfg.dataset, "train", data_dir=cfg.data_dir)
    test_x, test_y = data.load(cfg.dataset, "test", data_dir=cfg.data_dir)
    val = None
    held = val_count(cfg, len(train_y))
    if cfg.val_fraction and held == 0:
        raise TrainingError(f"val_fraction {cfg.val_fraction:g} of {len(train_y)} training "
                            "digits holds out none; use a larger fraction")
    if held:
        if held >= len(train_y):
            raise TrainingError(f"a validation split of {held} leaves no training data "
                                f"({len(train_y)} training digits)")
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed))
        val_idx, train_idx = order[:held].sort().values, order[held:].sort().values
        val = Split(train_x[val_idx].to(device), train_y[val_idx].to(device))
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    if cfg.train_subset:
        train_x, train_y = train_x[:cfg.train_subset], train_y[:cfg.train_subset]
    if cfg.test_subset:
        test_x, test_y = test_x[:cfg.test_subset], test_y[:cfg.test_subset]
    return Split(train_x.to(device), train_y.to(device)), val, Split(test_x.to(device),
                                                                       test_y.to(device))


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused kernels update every parameter in one call instead of one small op per tensor;
    # for a 10-tensor model that per-op overhead is a visible share of each step.
    fused = {"fused": True} if params and params[0].device.type in ("cpu", "cuda") else {}
    # torch.compile needs torch's guarded optimizer methods; an eager run skips them.
    optim = (lambda cls: cls) if cfg.compile else eager
    if cfg.optimizer == "sgd":
        return optim(torch.optim.SGD)(params, lr=cfg.lr, momentum=cfg.momentum,
                                      nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                                      **fused)
    if cfg.optimizer == "adam":
        return optim(torch.optim.Adam)(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return optim(torch.optim.AdamW)(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                        **fused)
    if cfg.optimizer == "sdlm":
        from lenet.training.optim.sdlm import SDLM

        return SDLM(params, lr=cfg.lr, rbf_j=cfg.rbf_j, seed=cfg.seed)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}")


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


@dataclass
class Distributed:
    """Where this process sits in a torchrun launch (world 1 when launched plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    def setup(self, device: torch.device) -> torch.device:
        if self.world == 1:
            return device
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def all_sum(self, *values: torch.Tensor) -> None:
        if self.world > 1:
            import torch.distributed as dist

            for v in values:
                dist.all_reduce(v)

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        # Contiguous, equal-as-possible shards of the global batch: DDP averages the ranks'
        # gradients, so the global batch size and the learning rate keep their meaning.
        return idx if self.world == 1 else idx.tensor_split(self.world)[self.rank]

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class _Stop(threading.Event):
    """Set by SIGINT or SIGTERM; `signum` says which (the exit code follows it)."""

    signum: int = signal.SIGINT


@contextmanager
def _stop_on_signals() -> Iterator[_Stop]:
    """SIGINT/SIGTERM set a flag; the trainer finishes its step, checkpoints, and stops."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C means "now"
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        stop.signum = signum
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class _Data:
    """The splits on the device, and how a training batch is made from them."""

    train: Split
    val: Split | None
    test: Split
    prep: Callable[[torch.Tensor], torch.Tensor]
    distort: Callable | None  # per-batch distortions (the inputs are then made per batch)
    channels_last: bool

    def batch(self, idx: torch.Tensor, augment: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.distort is None:
            x = self.train.inputs.index_select(0, idx)  # several times faster than inputs[idx]
        else:
            x = self.prep(self.distort(self.train.images[idx], augment))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.train.labels[idx]

    def sample(self, gens: dict[str, torch.Generator], count: int = 500
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` random training digits for an :class:`~lenet.training.optim.EpochHook`."""
        split = self.train
        idx = torch.randperm(len(split.labels), generator=gens["order"])[:count]
        idx = idx.to(split.labels.device)
        if split.inputs is not None:
            return split.inputs[idx], split.labels[idx]
        return self.prep(self.distort(split.images[idx], gens["augment"])), split.labels[idx]


def _load_data(cfg: TrainConfig, prep: Callable[[torch.Tensor], torch.Tensor],
               device: torch.device) -> _Data:
    train_split, val_split, test_split = load_splits(cfg, device)
    distort = None
    if cfg.distort:
        from lenet.data.distort import Distortion

        distort = Distortion()
    else:
        train_split.inputs = prep(train_split.images)
    for split in (val_split, test_split):
        if split is not None:
            split.inputs = prep(split.images)
    return _Data(train_split, val_split, test_split, prep, distort, cfg.channels_last)


@dataclass
class _Resume:
    """Where an interrupted epoch stopped; the first epoch of the resumed run starts there."""

    step: int  # steps of the epoch already done
    order_state: list[int]  # the epoch-order generator's state when the epoch began
    loss_sum: float
    correct: int


@dataclass
class _Run:
    """What a training run carries from phase to phase."""

    cfg: TrainConfig
    log: Log
    progress: bool
    device: torch.device
    dist: Distributed
    data: _Data
    model: nn.Module
    params: int
    optimizer: torch.optim.Optimizer
    # The epoch order comes from its own CPU generator so that the same seed gives the same
    # batches on every device; distortions draw from a device generator of their own.
    gens: dict[str, torch.Generator]
    loss_name: str
    loss_fn: Callable
    eval_loss_fn: Callable
    run_dir: Path
    run_id: str  # stamped into every checkpoint; --resume takes only this run's
    history: list[EpochMetrics] = field(default_factory=list)
    last_checkpoint: Path | None = None  # the newest good one on disk (kept by the next save)
    epoch: int = 0  # completed epochs
    step: int = 0  # global step
    train_seconds: float = 0.0
    resume_at: _Resume | None = None  # consumed by the first epoch

    @property
    def main(self) -> bool:
        return self.dist.is_main

    def weights_meta(self, accuracy: float | None, epoch: int,
                     chosen: dict[str, Any] | None = None) -> weights.WeightsMeta:
        """`chosen`: for model_best, how validation chose it."""
        from lenet.data import DATASETS

        cfg = self.cfg
        return weights.WeightsMeta(
            cfg.model, self.data.prep, cfg.dataset, list(DATASETS[cfg.dataset].classes),
            accuracy, {"loss": self.loss_name, "rbf_j": cfg.rbf_j,
                       "eval_batch_size": cfg.eval_batch_size, "config": cfg.to_dict(),
                       "epoch": epoch, **(chosen or {})})


@dataclass
class _Loop:
    """How every epoch steps, fixed once the run has started."""

    step_fn: Step
    schedule: Schedule
    steps: int  # per epoch
    seen: int  # digits trained on per epoch
    # Per-step bookkeeping (loss sum, hits, the finiteness check, DDP's stop vote) is batched:
    # every step only queues its loss and predictions, and every `account_every` steps one
    # stacked check and sum settles them. At batch 1 a per-step check is a visible share of
    # the paper's recipe; on an accelerator each check is also a sync. A non-finite loss is
    # still reported at its exact step, and no checkpoint is written in between.
    account_every: int
    tb: Any  # TensorBoardLogger | None
    # Steps per call of step_fn: 1, or for the compiled per-pattern step (batch 1) a run of
    # patterns in one call (see _make_step), which then returns one loss per step.
    chunk: int = 1


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

    def progress(self) -> dict[str, Any]:
        """What a mid-epoch checkpoint keeps of it (:class:`_Resume` when read back)."""
        return {"order_state": self.order_state.tolist(), "loss_sum": float(self.loss_sum),
                "correct": int(self.correct)}


def train(cfg: TrainConfig, log: Log | None = None, progress: bool | None = None,
          resume: bool = False, overwrite: bool = False) -> RunResult:
    """Train `cfg.model` on `cfg.dataset`, evaluate it on the test set, save the run.

    `cfg.run_dir` must be new or empty (:func:`lenet.storage.rundir.claim`); `overwrite` first
    deletes
    an earlier run's files there. With ``resume=True`` it must be an earlier run's directory:
    training continues from its newest intact checkpoint of that run (or from the start if it
    has none).
    """
    dist = Distributed.from_env()
    if log is None:
        log = console.log if dist.is_main else console.silent
    progress = (_interactive() and dist.is_main) if progress is None else progress
    t_start = time.perf_counter()
    device = dist.setup(pick(cfg.device))
    threads = torch.get_num_threads()  # restored at the end; per-pattern training uses one
    if device.type == "cpu":
        # The cores free now, unless --threads or OMP_NUM_THREADS say; the count changes the
        # order of float sums, so it is saved with the config and a resume keeps it.
        wanted = cfg.threads or default_threads()
        if wanted:
            torch.set_num_threads(wanted)
        cfg = replace(cfg, threads=torch.get_num_threads())
    try:
        run_dir, created = _run_dir(cfg, dist)
        owned = (rundir.claim(run_dir, resume=resume, overwrite=overwrite, created=created)
                 if dist.is_main else nullcontext(run_dir))
        with owned:
            run = _setup(cfg, log, progress, device, dist, run_dir, resume)
            loop = _start(run, resumed=_resume(run) if resume else False)
            test: EvalResult | None = None
            with _stop_on_signals() as stop:
                for epoch in range(run.epoch, cfg.epochs):
                    if _patience_spent(run):
                        break
                    test = _run_epoch(run, loop, epoch, stop)
            return _finish(run, loop, test, t_start)
    finally:
        torch.set_num_threads(threads)
        dist.close()


def _run_dir(cfg: TrainConfig, dist: Distributed) -> tuple[Path, bool]:
    """The run directory, and whether it was just created (a new default one)."""
    if cfg.run_dir:
        return Path(cfg.run_dir), False
    # Rank 0 alone creates the default folder (ranks may disagree on the clock).
    made = str(rundir.default(cfg.model)) if dist.is_main else ""
    return Path(dist.broadcast(made)), True


def _setup(cfg: TrainConfig, log: Log, progress: bool, device: torch.device,
           dist: Distributed, run_dir: Path, resume: bool) -> _Run:
    """Seed, put the data on the device, build the model, its optimizer and the generators."""
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.model)
    loss_name = spec.loss if cfg.loss == "auto" else cfg.loss
    loss_fn = make_loss(loss_name, label_smoothing=cfg.label_smoothing, rbf_j=cfg.rbf_j)
    eval_loss_fn = make_loss(loss_name, rbf_j=cfg.rbf_j)
    prep = replace(spec.preprocessing, deslant=True) if cfg.deslant else spec.preprocessing
    data = _load_data(cfg, prep, device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = spec.build().to(device, memory_format=memory_format)
    # A resumed run keeps its id; a run dir from an older lenet has none, and gets one (its
    # checkpoints, which carry none, are then skipped).
    saved = rundir.read_config(run_dir).get(rundir.RUN_ID) if resume else None
    run_id = dist.broadcast(saved if isinstance(saved, str) else rundir.new_run_id())
    optimizer = make_optimizer(cfg, model)
    gens = {"order": torch.Generator().manual_seed(cfg.seed),
            "augment": torch.Generator(device=device).manual_seed(cfg.seed + 1)}
    return _Run(cfg, log, progress, device, dist, data, model, count_parameters(model),
                optimizer, gens, loss_name, loss_fn, eval_loss_fn, run_dir, run_id)


def _state_keys(cfg: TrainConfig) -> tuple[str, ...]:
    """The per-parameter state the optimizer of `cfg` keeps (what its checkpoint must hold)."""
    if cfg.optimizer == "sgd":
        return ("momentum_buffer",) if cfg.momentum else ()
    if cfg.optimizer == "sdlm":
        return ("h",)
    return ("step", "exp_avg", "exp_avg_sq")  # adam, adamw


def _check_checkpoint(run: _Run, ckpt: checkpoint.Checkpoint, path: Path, steps: int) -> None:
    """Refuse (WeightsError) a verified checkpoint of another run, or one that does not fit
    this run: counts that contradict each other, tensors of another model or optimizer."""
    if ckpt.run_id != run.run_id:
        whose = f"run id {ckpt.run_id}" if ckpt.run_id else "no run id (an older lenet's?)"
        raise WeightsError(f"{path}: written by another run ({whose}; this run is "
                           f"{run.run_id})")
    history = ckpt.state["history"]
    try:
        metrics = [_metrics(m) for m in history]
        ok = all(m.epoch == i + 1 and all(isinstance(v, (int, float)) or v is None
                                          for v in asdict(m).values())
                 for i, m in enumerate(metrics))
    except TypeError:
        ok = False
    if not ok or len(history) != ckpt.epoch:
        raise WeightsError(f"{path}: claims {ckpt.epoch} completed epochs, but its history "
                           f"records {len(history)} (or is malformed)")
    if ckpt.step_in_epoch >= steps:
        raise WeightsError(f"{path}: stopped at step {ckpt.step_in_epoch} of an epoch that has "
                           f"{steps}")
    order = run.gens["order"].get_state()
    if "order" not in ckpt.rng or ckpt.rng["order"].numel() != order.numel():
        raise WeightsError(f"{path}: no epoch-order RNG state of {order.numel()} bytes")
    checkpoint.check_fits(ckpt, str(path), run.model, run.optimizer, _state_keys(run.cfg))


def _resume(run: _Run) -> bool:
    """Continue from the newest intact checkpoint of this run; whether there was one."""
    steps = _steps_per_epoch(run)
    ckpt = checkpoint.latest(run.run_dir, warn=run.log,
                             check=lambda c, path: _check_checkpoint(run, c, path, steps))
    if ckpt is None:
        run.log(f"no intact checkpoint in {run.run_dir}; starting it from the beginning")
        return False
    if (ckpt.epoch, ckpt.step_in_epoch) > (run.cfg.epochs, 0):
        raise ConfigError(f"{run.run_dir} has trained {ckpt.epoch} epochs already "
                          f"({ckpt.path}); --epochs {run.cfg.epochs} is fewer: resume with "
                          f"--epochs {ckpt.epoch} or more")
    run.model.load_state_dict(ckpt.model)
    run.optimizer.load_state_dict(ckpt.optimizer)
    _match_state_layout(run.optimizer)
    _restore_rng(run.gens, ckpt.rng)
    run.history = [_metrics(m) for m in ckpt.state["history"]]
    run.epoch, run.step = ckpt.epoch, ckpt.global_step
    run.train_seconds = float(ckpt.state.get("train_seconds", 0.0))
    run.last_checkpoint = ckpt.path
    _check_best(run)
    if ckpt.step_in_epoch:
        carried = ckpt.state.get("epoch_progress", {})
        run.resume_at = _Resume(ckpt.step_in_epoch, carried["order_state"],
                                carried.get("loss_sum", 0.0), carried.get("correct", 0))
    run.log(f"resuming {run.run_dir} from epoch {ckpt.epoch}"
            + (f", step {ckpt.step_in_epoch}" if ckpt.step_in_epoch else ""))
    return True


@contextmanager
def _writing(run: _Run) -> Iterator[None]:
    """Trouble with the file system while writing the run (a full disk, a read-only place) is
    one RunDirError line, which says how to resume when a checkpoint is kept."""
    try:
        yield
    except OSError as e:
        resume = run.run_dir if run.last_checkpoint is not None else None
        raise rundir.write_error(run.run_dir, e, resume=resume) from None


def _steps_per_epoch(run: _Run) -> int:
    n, bs, world = len(run.data.train.labels), run.cfg.batch_size, run.dist.world
    steps = math.ceil(n / bs)
    if 0 < n % bs < world:
        # A last global batch smaller than the number of ranks would leave some rank an empty
        # shard: a NaN mean loss, poisoned into every rank by DDP's gradient average. Those
        # few digits sit the epoch out (a new permutation brings them back next epoch).
        steps -= 1
    if steps == 0:
        raise TrainingError(f"{n} training digits cannot be shared among {world} "
                            f"processes; use more data or fewer processes (--nproc)")
    return steps


def _start(run: _Run, resumed: bool) -> _Loop:
    """Write the run directory's config (and initial weights), wrap the model for DDP, and fix
    how every epoch steps."""
    cfg, dist = run.cfg, run.dist
    tb = None
    if run.main:
        with _writing(run):
            rundir.write_config(run.run_dir, {**cfg.to_dict(), rundir.RUN_ID: run.run_id})
            if not resumed:
                weights.save(run.run_dir / rundir.INITIAL, run.model,
                             run.weights_meta(None, 0))
            tb = _tensorboard(run.run_dir, run.log) if cfg.tensorboard else None
    train_model: nn.Module = run.model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    n, bs = len(run.data.train.labels), cfg.batch_size
    steps = _steps_per_epoch(run)
    # The compiled lenet5 step is fp32, and beats bf16 on some CPUs (device.pick_precision).
    fast = _numba_lenet5(train_model, run.optimizer, run.loss_name, cfg, run.device)
    precision, note = pick_precision(cfg.precision, run.device, cfg.batch_size,
                                     compiled_fp32=fast is not None)
    if note and run.main:
        run.log(note)
    n_threads = torch.get_num_threads()
    step_fn, chunk = _make_step(train_model, run.optimizer, run.loss_fn, run.loss_name,
                                run.device, cfg, precision, fast)
    if run.epoch == 0 and run.resume_at is None:
        kind = getattr(getattr(step_fn, "__self__", step_fn), "compiled", None)
        named = f", step compiled with {kind}" if kind else ""
        threads = (f" ({n_threads} thread{'s' if n_threads != 1 else ''}{named})"
                   if run.device.type == "cpu" else "")
        run.log(f"training {cfg.model} ({run.params:,} parameters) on {cfg.dataset}: {n:,} "
                f"digits, {cfg.epochs} epochs, batch {bs}, {cfg.optimizer} lr {cfg.lr:g}, "
                f"{precision}, device {run.device}{threads}"
                + (f" x {dist.world} processes" if dist.world > 1 else "")
                + f"; run dir {run.run_dir}")
    return _Loop(step_fn, Schedule(cfg, steps), steps, min(n, steps * bs),
                 256 if run.device.type == "cpu" else 64, tb, chunk)


def _run_epoch(run: _Run, loop: _Loop, epoch: int, stop: _Stop) -> EvalResult:
    """One pass over the training digits (the rest of one when resuming mid-epoch), then its
    evaluation, metrics row and checkpoint; returns the test result."""
    ep = _begin_epoch(run, epoch)
    stopped_at = _steps(run, loop, ep, stop)
    if stopped_at is not None:
        run.train_seconds += time.perf_counter() - ep.started
        path = _save(run, epoch, stopped_at, ep.progress()) if run.main else None
        _interrupted(run, f"at epoch {epoch + 1}, step {stopped_at}", path, stop.signum)
    return _end_epoch(run, loop, ep, stop)


def _begin_epoch(run: _Run, epoch: int) -> _Epoch:
    started = time.perf_counter()
    run.model.train()
    at, run.resume_at = run.resume_at, None
    order = run.gens["order"]
    if at is not None:
        # Re-create this epoch's order from the generator state saved at its start.
        order.set_state(torch.tensor(at.order_state, dtype=torch.uint8))
    elif isinstance(run.optimizer, EpochHook):
        # SDLM re-estimates its per-parameter step sizes on a sample before every pass.
        run.optimizer.before_epoch(run.model, run.data.sample(run.gens), run.loss_name)
    order_state = order.get_state()
    perm = torch.randperm(len(run.data.train.labels), generator=order).to(run.device)
    loss_sum = torch.tensor(at.loss_sum if at else 0.0, dtype=torch.float64, device=run.device)
    correct = torch.tensor(at.correct if at else 0, dtype=torch.long, device=run.device)
    return _Epoch(epoch, at.step if at else 0, order_state, perm, loss_sum, correct, started)


def _steps(run: _Run, loop: _Loop, ep: _Epoch, stop: _Stop) -> int | None:
    """Run the epoch's steps from `ep.first`. Returns None when the epoch is done, or the steps
    done so far when a signal stopped it early (its sums settled)."""
    bs, steps, dist, schedule = run.cfg.batch_size, loop.steps, run.dist, loop.schedule
    augment, step = run.gens["augment"], run.step
    bar = _progress(steps, f"epoch {ep.index + 1}/{run.cfg.epochs}", run.progress, ep.first)
    try:
        for k in range(ep.first, steps, loop.chunk):
            end = min(k + loop.chunk, steps)  # steps k .. end - 1 in this call
            x, y = run.data.batch(dist.shard(ep.perm[k * bs:end * bs]), augment)
            if schedule.per_step or k == ep.first:
                _set_lr(run.optimizer, schedule.lr(ep.index, step))
            loss, scores = loop.step_fn(x, y)
            ep.pending.append((loss.detach(), scores.detach().argmax(1), y))
            step += end - k
            settle = end // loop.account_every != k // loop.account_every
            if settle:
                _settle(run, loop, ep, last_step=end - 1)
            if bar is not None:
                bar.update(end - k)
            # DDP ranks vote on stopping (a collective) only when they settle.
            if ((settle or dist.world == 1) and _should_stop(stop, dist, run.device)
                    and end < steps):
                _settle(run, loop, ep, last_step=end - 1)
                return end
        _settle(run, loop, ep, last_step=steps - 1)
        return None
    finally:
        run.step = step
        if bar is not None:
            bar.close()


def _settle(run: _Run, loop: _Loop, ep: _Epoch, last_step: int) -> None:
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
        raise _diverged(run, f"{float(losses[first])} at epoch {ep.index + 1}, step {step}",
                        rate)
    sizes = torch.tensor([size for loss, _, y in pending
                          for size in [len(y) // loss.numel()] * loss.numel()],
                         dtype=torch.float64, device=losses.device)
    ep.loss_sum += (losses.double() * sizes).sum()
    hits = torch.cat([p for _, p, _ in pending]) == torch.cat([y for _, _, y in pending])
    ep.correct += hits.sum()
    pending.clear()


def _end_epoch(run: _Run, loop: _Loop, ep: _Epoch, stop: _Stop) -> EvalResult:
    """Sum the ranks, check the loss, evaluate, log and save the finished epoch."""
    cfg = run.cfg
    run.dist.all_sum(ep.loss_sum, ep.correct)
    train_loss = float(ep.loss_sum) / loop.seen
    if not math.isfinite(train_loss):
        raise _diverged(run, f"{train_loss} in epoch {ep.index + 1}",
                        loop.schedule.lr(ep.index, ep.index * loop.steps))
    seconds = time.perf_counter() - ep.started
    run.train_seconds += seconds
    test = _evaluate(run, run.data.test)
    val = _evaluate(run, run.data.val) if run.data.val is not None else None
    m = EpochMetrics(ep.index + 1, train_loss, int(ep.correct) / loop.seen, test.accuracy,
                     test.loss, val.accuracy if val is not None else None,
                     val.loss if val is not None else None,
                     loop.schedule.lr(ep.index, ep.index * loop.steps),
                     time.perf_counter() - ep.started,
                     (loop.seen - ep.first * cfg.batch_size) / seconds)
    run.history.append(m)
    run.log(_format_epoch(m, cfg.epochs))
    if run.main:
        with _writing(run):
            rundir.write_metrics(run.run_dir, METRICS_COLUMNS, [asdict(h) for h in run.history])
            if loop.tb is not None:
                loop.tb.log_epoch(run.model, m)
            # Before the checkpoint: a checkpoint of epoch k implies model_best is of epoch <= k.
            _save_best(run, m)
        _save(run, ep.index + 1, 0, {})
    run.epoch = ep.index + 1
    if _should_stop(stop, run.dist, run.device) and ep.index + 1 < cfg.epochs:
        _interrupted(run, f"after epoch {ep.index + 1}", None, stop.signum)
    return test


def _save_best(run: _Run, m: EpochMetrics) -> None:
    """Write model_best.safetensors (atomically) when epoch `m` is the best on validation."""
    chosen = select(run.history)
    if chosen.best_epoch != m.epoch:
        return
    weights.save(run.run_dir / rundir.BEST, run.model, run.weights_meta(
        m.test_accuracy, m.epoch, {"selected_on": "validation", "val_accuracy": m.val_accuracy,
                                   "val_loss": m.val_loss}))


def _check_best(run: _Run) -> None:
    """On resume: drop a model_best.safetensors that is not of the best epoch the history
    records (written for an epoch the resumed run trains again, or damaged); validation picks
    again from here."""
    path = run.run_dir / rundir.BEST
    if not run.main or not path.exists():
        return
    try:
        epoch = weights.read(path)[1].extra.get("epoch")
    except (WeightsError, OSError):
        epoch = None
    best = select(run.history).best_epoch
    if epoch != best:
        run.log(f"{path} is not of epoch {best}, the best on validation so far; deleting it")
        with _writing(run):
            path.unlink()


def _patience_spent(run: _Run) -> bool:
    """Whether `early_stop` epochs have passed without a new low of the validation loss."""
    patience = run.cfg.early_stop
    chosen = select(run.history)
    if not patience or chosen.stale_epochs < patience:
        return False
    run.log(f"early stop after epoch {run.epoch}: the validation loss has not fallen for "
            f"{chosen.stale_epochs} epoch{'s' if chosen.stale_epochs > 1 else ''} "
            f"(--early-stop {patience})")
    return True


def _diverged(run: _Run, where: str, rate: float) -> TrainingError:
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


def _evaluate(run: _Run, split: Split) -> EvalResult:
    """Evaluate on the run's threads (a compiled step may have left torch one)."""
    threads = torch.get_num_threads()
    if run.device.type == "cpu" and run.cfg.threads:
        torch.set_num_threads(run.cfg.threads)
    try:
        return evaluate_tensors(run.model, split.inputs, split.labels, run.eval_loss_fn,
                                run.cfg.eval_batch_size)
    finally:
        torch.set_num_threads(threads)


def _save(run: _Run, epoch_done: int, step_in_epoch: int, progress: dict[str, Any]) -> Path:
    """Write a checkpoint; the one before it is the only other kept (deleted by the next)."""
    ckpt = checkpoint.Checkpoint(
        epoch=epoch_done, step_in_epoch=step_in_epoch, global_step=run.step,
        model=run.model.state_dict(), optimizer=run.optimizer.state_dict(),
        rng=_rng_states(run.gens),
        state={"history": [asdict(m) for m in run.history], "train_seconds": run.train_seconds,
               "epoch_progress": progress}, run_id=run.run_id)
    with _writing(run):
        path = checkpoint.save(run.run_dir, ckpt, keep=run.last_checkpoint)
    run.last_checkpoint = path
    return path


def _interrupted(run: _Run, where: str, saved: Path | None, signum: int) -> NoReturn:
    """Stop on a signal: say where, and how to resume (checkpoint `saved` written just now)."""
    written = f"checkpoint {saved}\n" if saved is not None else ""
    run.log(f"interrupted {where}; {written}resume with: lenet train --resume {run.run_dir}")
    raise TrainingInterrupted(f"training stopped by {signal.Signals(signum).name}; resume with "
                              f"`lenet train --resume {run.run_dir}`", signum)


def _finish(run: _Run, loop: _Loop, test: EvalResult | None, t_start: float) -> RunResult:
    """Save the final weights, close TensorBoard, and report."""
    cfg = run.cfg
    if test is None:  # resumed a run whose last epoch had already finished
        test = _evaluate(run, run.data.test)
    result = RunResult(cfg, run.run_dir, run.params, test, run.train_seconds, run.history,
                       run.model.eval())
    if run.main:
        with _writing(run):
            # The epochs trained, which a resume never lets differ from cfg.epochs.
            weights.save(run.run_dir / rundir.WEIGHTS, run.model,
                         run.weights_meta(test.accuracy, run.epoch))
        if loop.tb is not None:
            loop.tb.close(cfg.to_dict(), {k: v for k, v in result.summary().items()
                                          if k in ("test_accuracy", "test_loss",
                                                   "best_val_accuracy", "train_seconds")})
    chosen = select(run.history)
    if chosen.best_epoch is not None:
        run.log(f"best validation accuracy {chosen.best_val_accuracy:.4f} at epoch "
                f"{chosen.best_epoch}: {run.run_dir / rundir.BEST}")
    run.log(f"test accuracy {test.accuracy:.4f} ({test.errors} errors of {test.total}), "
            f"{run.train_seconds:.1f}s training, {time.perf_counter() - t_start:.1f}s in all; "
            f"saved {run.run_dir / rundir.WEIGHTS}")
    return result


def _format_epoch(m: EpochMetrics, epochs: int) -> str:
    val = ""
    if m.val_accuracy is not None:
        val = f" val_acc {m.val_accuracy:.4f}"
        val += f" val_loss {m.val_loss:.4f}" if m.val_loss is not None else ""
    return (f"epoch {m.epoch:>{len(str(epochs))}}/{epochs}  loss {m.train_loss:.4f}  "
            f"train_acc {m.train_accuracy:.4f}{val}  test_acc {m.test_accuracy:.4f}  "
            f"lr {m.lr:.3g}  {m.seconds:.2f}s  {m.images_per_s:,.0f} img/s")


def _rng_states(gens: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    states = {name: g.get_state() for name, g in gens.items()}
    states["torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def _restore_rng(gens: dict[str, torch.Generator], states: dict[str, torch.Tensor]) -> None:
    # A state of another size comes from another device type (a run resumed on the CPU that
    # began on a GPU): that generator starts afresh rather than fail.
    for name, g in gens.items():
        if name in states and states[name].numel() == g.get_state().numel():
            g.set_state(states[name])
    torch.set_rng_state(states["torch"])
    if ("cuda" in states and torch.cuda.is_available()
            and states["cuda"].numel() == torch.cuda.get_rng_state().numel()):
        torch.cuda.set_rng_state(states["cuda"])


def _should_stop(stop: _Stop, dist_env: Distributed, device: torch.device) -> bool:
    if dist_env.world == 1:
        return stop.is_set()
    # On the training device: NCCL reduces CUDA tensors only.
    flag = torch.tensor([1.0 if stop.is_set() else 0.0], device=device)
    dist_env.all_sum(flag)  # every rank stops at the same step, or none does
    return bool(flag.item())


def _match_state_layout(opt: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (momentum, Adam's moments) its parameter's memory
    layout. A checkpoint stores them contiguous; with channels-last weights the fused optimizer
    kernels walk parameter and state in memory order, so a layout mismatch would pair the wrong
    elements and a resumed run would silently diverge from the uninterrupted one."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if (isinstance(value, torch.Tensor) and value.shape == p.shape
                        and value.stride() != p.stride()):
                    opt.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _pattern_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_name: str,
                  rbf_j: float) -> Step | None:
    """The hand-written per-pattern step: compiled where numba imports and supports the setup,
    unless LENET_PATTERN_STEP=torch asks for the reference; None where neither applies."""
    from lenet.training.steps import pattern as pattern_step

    if not pattern_step.supports(model, optimizer, loss_name):
        return None
    if os.environ.get("LENET_PATTERN_STEP", "auto") != "torch":
        try:
            from lenet.training.steps import pattern_numba
        except ImportError:  # numba is optional (lenet[fast]), or too old/new for this numpy
            pattern_numba = None
        if pattern_numba is not None and pattern_numba.supports(model, optimizer, loss_name):
            return pattern_numba.NumbaPatternStep(model, optimizer, loss_name, rbf_j)
    return pattern_step.PatternStep(model, optimizer, loss_name, rbf_j)


def _numba_lenet5(model: nn.Module, optimizer: torch.optim.Optimizer, loss_name: str,
                  cfg: TrainConfig, device: torch.device) -> ModuleType | None:
    """lenet.training.steps.lenet5_numba where its compiled step computes this run's fp32 step (a
    lenet5 on the CPU, numba installed), unless LENET_STEP=torch asks for autograd's; else
    None."""
    from lenet.models.lenet5 import LeNet5

    # The cheap checks first: importing numba costs a process ~0.3 s.
    if (device.type != "cpu" or cfg.compile or cfg.optimizer == "sdlm"
            or type(model) is not LeNet5 or os.environ.get("LENET_STEP", "auto") == "torch"):
        return None
    try:
        from lenet.training.steps import lenet5_numba
    except ImportError:  # numba is optional (lenet[fast]), or too old/new for this numpy
        return None
    return lenet5_numba if lenet5_numba.supports(model, optimizer, loss_name) else None


def _compiled_batch_step(fast: ModuleType, model: nn.Module, optimizer: torch.optim.Optimizer,
                         cfg: TrainConfig) -> Step:
    """``lenet5``'s step compiled with numba (faster than autograd's, BENCHMARKS.md), from the
    module :func:`_numba_lenet5` offered. It runs on the threads torch was given, and torch
    itself then gets one: a second OpenMP thread still spinning after torch's own small ops
    (the update, the batch gathering) slowed the step's threads (BENCHMARKS.md). _evaluate
    gives torch the run's threads back for the test passes."""
    step = fast.NumbaLeNet5Step(model, optimizer, cfg.label_smoothing,
                                threads=torch.get_num_threads())
    torch.set_num_threads(1)
    return step


# Patterns per call of the compiled per-pattern step: a divisor of the CPU's account_every
# (256), so bookkeeping and a stop request still fall on its boundaries.
PATTERN_CHUNK = 256


def _make_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
               loss_name: str, device: torch.device, cfg: TrainConfig, precision: str,
               fast: ModuleType | None = None) -> tuple[Step, int]:
    """The training step and how many steps one call of it takes (see _Loop.chunk); `fast`:
    lenet.training.steps.lenet5_numba where :func:`_numba_lenet5` offered it for this run."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    # fp16's narrow range underflows small gradients: scale the loss (CUDA only, see device).
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

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

    fn: Step = step
    if cfg.compile:
        fn = torch.compile(step)
    elif precision == "fp32" and fast is not None:
        fn = _compiled_batch_step(fast, model, optimizer, cfg)
    elif precision == "fp32" and cfg.optimizer == "sdlm":
        # The paper's per-pattern recipe: the same step with its gradients written out by hand,
        # which at batch 1 skips autograd's per-step graph (lenet.training.steps.pattern), compiled
        # with numba where installed (lenet.training.steps.pattern_numba, ~9x faster).
        pattern = _pattern_step(model, optimizer, loss_name, cfg.rbf_j)
        if (hasattr(pattern, "sequence") and cfg.batch_size == 1
                and cfg.scheduler not in PER_STEP_SCHEDULERS):  # one rate for a whole chunk
            return pattern.sequence, PATTERN_CHUNK
        fn = pattern or fn
    if device.type != "cpu" or cfg.batch_size > 4:
        return fn, 1

    def native_conv_step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-pattern training: at batch 1 oneDNN's per-call overhead dominates the tiny
        # convolutions, and ATen's native kernels make a LeNet step faster (the switch covers
        # forward and backward, both of which run inside `fn`). Ops this small gain nothing
        # from intra-op threads, and on a busy CPU a waiting second thread makes every op
        # several times slower, so one thread (restored when train() returns).
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            return fn(x, y)
        finally:
            torch.backends.mkldnn.enabled = enabled

    return native_conv_step, 1


def _interactive() -> bool:
    """A person is watching: stderr is a terminal, or this runs in a Jupyter kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):  # -> tqdm | None
    if not enabled:
        return None
    # tqdm.auto: a widget in Jupyter (where ipywidgets is installed), text in a terminal.
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="step",
                file=sys.stderr)


def _tensorboard(run_dir: Path, log: Log):  # -> TensorBoardLogger | None
    try:
        from lenet.training.tensorboard import TensorBoardLogger
    except ImportError as e:  # TensorBoard is an extra (lenet[tensorboard]): train without it
        log(str(e))
        return None
    return TensorBoardLogger(run_dir)


def run(config: str | os.PathLike[str] | TrainConfig | None = None, *, log: Log | None = None,
        progress: bool | None = None, resume: bool = False, overwrite: bool = False,
        **overrides: Any) -> RunResult:
    """``lenet.train(...)``: train as `lenet train` does, from Python.

    `config` is a shipped recipe's name (``"lenet5-fast"``), a YAML path, a :class:`TrainConfig`
    or None (the model's own recipe, else ``lenet5``); `overrides` are TrainConfig keys
    (``epochs=2, train_subset=6000``). Returns the :class:`RunResult`: ``.metrics``, ``.model``
    (trained, in eval mode), ``.run_dir``, ``.history``.

    >>> result = lenet.train("lenet5", epochs=1, train_subset=6000)
    """
    from lenet.config import resolve

    if isinstance(config, TrainConfig):
        values = {**config.to_dict(), **overrides}
        values.pop("run_id", None)
        cfg = resolve(None, {"model": config.model, **values})
    else:
        cfg = resolve(None if config is None else os.fspath(config), overrides)
    return train(cfg, log=log, progress=progress, resume=resume, overwrite=overwrite)
