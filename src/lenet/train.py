"""The trainer: the whole dataset on the device, one randperm per epoch, batches by indexing.

No DataLoader and no per-sample Python in the hot path: the digits are loaded once as uint8,
preprocessed once on the device (or per batch when distortions are on), and every batch is a
gather from that tensor. What a run leaves behind (``runs/<time>-<model>/``):

- ``config.json``: the fully resolved :class:`~lenet.config.TrainConfig`;
- ``metrics.csv``: one row per epoch;
- ``initial.safetensors`` and ``model.safetensors``: weights at the start and the end, with the
  preprocessing and the final test accuracy in their metadata;
- ``checkpoints/``: the last two checkpoints (model, optimizer, every RNG state, metrics), from
  which ``lenet train --resume RUN_DIR`` continues bit-identically on CPU;
- TensorBoard event files (``tensorboard --logdir runs``).

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process trains on its own shard of each
global batch under DistributedDataParallel; only rank 0 logs and writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet import atomic, checkpoint, weights
from lenet.config import TrainConfig
from lenet.errors import LenetError
from lenet.evaluate import EvalResult, evaluate_tensors
from lenet.losses import make_loss
from lenet.models import count_parameters, get_spec

Log = Callable[[str], None]


class TrainingError(LenetError):
    """Training cannot go on (for example the loss became NaN)."""


class TrainingInterrupted(LenetError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed."""

    exit_code = 130


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    val_accuracy: float | None
    lr: float
    seconds: float
    images_per_s: float


@dataclass
class RunResult:
    config: TrainConfig
    run_dir: Path
    params: int
    test: EvalResult
    train_seconds: float
    history: list[EpochMetrics] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        epochs = len(self.history)
        return {
            "model": self.config.model,
            "dataset": self.config.dataset,
            "epochs": epochs,
            "test_accuracy": self.test.accuracy,
            "test_loss": self.test.loss,
            "test_errors": self.test.errors,
            "val_accuracy": self.history[-1].val_accuracy if self.history else None,
            "best_test_accuracy": max((m.test_accuracy for m in self.history), default=None),
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


def default_run_dir(model: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{model}"


def load_splits(cfg: TrainConfig, device: torch.device) -> tuple[Split, Split | None, Split]:
    """Train, optional validation (seeded, carved from the training set) and test splits."""
    from lenet import data

    train_x, train_y = data.load(cfg.dataset, "train", data_dir=cfg.data_dir)
    test_x, test_y = data.load(cfg.dataset, "test", data_dir=cfg.data_dir)
    val = None
    if cfg.val_size:
        if cfg.val_size >= len(train_y):
            raise TrainingError(f"val_size {cfg.val_size} leaves no training data "
                                f"({len(train_y)} training digits)")
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed))
        val_idx, train_idx = order[:cfg.val_size].sort().values, order[cfg.val_size:].sort().values
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
    optim = (lambda cls: cls) if cfg.compile else _eager
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
        from lenet.optim.sdlm import SDLM

        return SDLM(params, lr=cfg.lr, rbf_j=cfg.rbf_j, seed=cfg.seed)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}")


_EAGER: dict[type, type] = {}


def _eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """`cls` without its torch.compile guards, for eager training (not with `compile`).

    torch.optim wraps step, zero_grad, add_param_group and (load_)state_dict so that dynamo
    never traces them, and those wrappers import torch._dynamo on first use: about 1.2 s of a
    ~5 s `lenet train --config lenet5-fast` process. Outside torch.compile the wrapped
    functions (kept by functools.wraps as ``__wrapped__``) compute exactly the same, with the
    same state_dict; a torch version without ``__wrapped__`` simply keeps its guarded methods.
    """
    if cls in _EAGER:
        return _EAGER[cls]
    import inspect

    raw_step = inspect.unwrap(cls.step)

    def step(self: torch.optim.Optimizer, closure: Callable | None = None) -> Any:
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, closure)

    names = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
    body = {n: inspect.unwrap(getattr(torch.optim.Optimizer, n)) for n in names}
    body["step"] = step
    _EAGER[cls] = type(cls.__name__, (cls,), {**body, "__qualname__": cls.__qualname__,
                                              "__doc__": cls.__doc__})
    return _EAGER[cls]


class Schedule:
    """Learning rate as a function of (epoch, step): per-epoch or per-step schedules alike.

    Being a pure function of the position, it needs no state of its own in a checkpoint.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.total = cfg.epochs * steps_per_epoch
        self.per_step = cfg.scheduler in ("cosine", "onecycle")

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


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set a flag; the trainer finishes its step, checkpoints, and stops."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C means "now"
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _metrics_csv(history: list[EpochMetrics]) -> str:
    buf = io.StringIO()
    names = list(EpochMetrics.__dataclass_fields__)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for m in history:
        writer.writerow(["" if getattr(m, n) is None else getattr(m, n) for n in names])
    return buf.getvalue()


def _format_epoch(m: EpochMetrics, epochs: int) -> str:
    val = f" val_acc {m.val_accuracy:.4f}" if m.val_accuracy is not None else ""
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
    for name, g in gens.items():
        if name in states:
            g.set_state(states[name])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def train(cfg: TrainConfig, log: Log | None = None, progress: bool | None = None,
          resume: bool = False) -> RunResult:
    """Train `cfg.model` on `cfg.dataset`, evaluate it on the test set, save the run.

    With ``resume=True``, `cfg.run_dir` must be an earlier run's directory: training continues
    from its newest intact checkpoint (or from the start if it has none).
    """
    from lenet.device import pick

    dist_env = Distributed.from_env()
    if log is None:
        log = (lambda s: print(s, file=sys.stderr, flush=True)) if dist_env.is_main else (
            lambda s: None)
    progress = (sys.stderr.isatty() and dist_env.is_main) if progress is None else progress
    t_start = time.perf_counter()
    device = dist_env.setup(pick(cfg.device))
    threads = torch.get_num_threads()  # per-pattern training drops to one (_make_step)
    try:
        return _train(cfg, log, progress, resume, device, dist_env, t_start)
    finally:
        torch.set_num_threads(threads)
        dist_env.close()


def _train(cfg: TrainConfig, log: Log, progress: bool, resume: bool, device: torch.device,
           dist_env: Distributed, t_start: float) -> RunResult:
    main = dist_env.is_main
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.model)
    prep = spec.preprocessing
    loss_name = spec.loss if cfg.loss == "auto" else cfg.loss
    loss_fn = make_loss(loss_name, label_smoothing=cfg.label_smoothing, rbf_j=cfg.rbf_j)
    eval_loss_fn = make_loss(loss_name, rbf_j=cfg.rbf_j)

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
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    model = spec.build().to(device, memory_format=memory_format)
    params = count_parameters(model)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.model)
    run_dir = Path(dist_env.broadcast(str(run_dir)))  # ranks may disagree on the clock
    classes = _classes(cfg.dataset)
    meta_extra = {"loss": loss_name, "rbf_j": cfg.rbf_j, "eval_batch_size": cfg.eval_batch_size,
                  "config": cfg.to_dict()}

    def meta(acc: float | None, **extra: Any) -> weights.WeightsMeta:
        return weights.WeightsMeta(cfg.model, prep, cfg.dataset, classes, acc,
                                   {**meta_extra, **extra})

    optimizer = make_optimizer(cfg, model)
    # The epoch order comes from its own CPU generator so that the same seed gives the same
    # batches on every device; distortions draw from a device generator of their own.
    gens = {"order": torch.Generator().manual_seed(cfg.seed),
            "augment": torch.Generator(device=device).manual_seed(cfg.seed + 1)}
    history: list[EpochMetrics] = []
    start_epoch, start_step_in_epoch, step = 0, 0, 0
    carried: dict[str, Any] = {}
    train_seconds = 0.0
    ckpt = checkpoint.latest(run_dir, warn=log) if resume else None
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        _match_state_layout(optimizer)
        _restore_rng(gens, ckpt.rng)
        history = [EpochMetrics(**m) for m in ckpt.state["history"]]
        start_epoch, start_step_in_epoch, step = ckpt.epoch, ckpt.step_in_epoch, ckpt.global_step
        carried = ckpt.state.get("epoch_progress", {})
        train_seconds = float(ckpt.state.get("train_seconds", 0.0))
        log(f"resuming {run_dir} from epoch {ckpt.epoch}"
            + (f", step {ckpt.step_in_epoch}" if ckpt.step_in_epoch else ""))
    elif resume:
        log(f"no intact checkpoint in {run_dir}; starting it from the beginning")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        if ckpt is None:
            weights.save(run_dir / "initial.safetensors", model, meta(None, epoch=0))
    tb = _tensorboard(run_dir) if cfg.tensorboard and main else None

    train_model: nn.Module = model
    if dist_env.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    n = len(train_split.labels)
    bs = cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    if 0 < n % bs < dist_env.world:
        # A last global batch smaller than the number of ranks would leave some rank an empty
        # shard: a NaN mean loss, poisoned into every rank by DDP's gradient average. Those
        # few digits sit the epoch out (a new permutation brings them back next epoch).
        steps_per_epoch -= 1
    if steps_per_epoch == 0:
        raise TrainingError(f"{n} training digits cannot be shared among {dist_env.world} "
                            f"processes; use more data or fewer processes (--nproc)")
    seen = min(n, steps_per_epoch * bs)  # digits trained on per epoch
    schedule = Schedule(cfg, steps_per_epoch)
    step_fn = _make_step(train_model, optimizer, loss_fn, loss_name, device, cfg)
    # Per-step bookkeeping (loss sum, hits, the finiteness check, DDP's stop vote) is batched:
    # every step only queues its loss and predictions, and every `account_every` steps one
    # stacked check and sum settles them. At batch 1 the per-step version cost ~15 % of the
    # paper's recipe; on an accelerator each check is also a sync. A non-finite loss is still
    # reported at its exact step, and no checkpoint is written in between.
    account_every = 256 if device.type == "cpu" else 64

    def save_checkpoint(epoch_done: int, step_in_epoch: int, progress_state: dict) -> Path:
        return checkpoint.save(run_dir, checkpoint.Checkpoint(
            epoch=epoch_done, step_in_epoch=step_in_epoch, global_step=step,
            model=model.state_dict(), optimizer=optimizer.state_dict(),
            rng=_rng_states(gens),
            state={"history": [asdict(m) for m in history], "train_seconds": train_seconds,
                   "epoch_progress": progress_state}))

    if start_epoch == 0 and start_step_in_epoch == 0:
        log(f"training {cfg.model} ({params:,} parameters) on {cfg.dataset}: {n:,} digits, "
            f"{cfg.epochs} epochs, batch {bs}, {cfg.optimizer} lr {cfg.lr:g}, device {device}"
            + (f" x {dist_env.world} processes" if dist_env.world > 1 else "")
            + f"; run dir {run_dir}")
    test: EvalResult | None = None
    with _stop_on_signals() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            mid_epoch = epoch == start_epoch and start_step_in_epoch > 0
            if mid_epoch:
                # Re-create this epoch's order from the generator state saved at its start.
                gens["order"].set_state(torch.tensor(carried["order_state"], dtype=torch.uint8))
            elif hasattr(optimizer, "before_epoch"):
                # SDLM re-estimates its per-parameter step sizes on a sample before every pass.
                optimizer.before_epoch(model, _sample_inputs(train_split, prep, distort, gens),
                                       loss_name)
            order_state = gens["order"].get_state()
            perm = torch.randperm(n, generator=gens["order"]).to(device)
            loss_sum = torch.tensor(carried.get("loss_sum", 0.0) if mid_epoch else 0.0,
                                    dtype=torch.float64, device=device)
            correct = torch.tensor(carried.get("correct", 0) if mid_epoch else 0,
                                   dtype=torch.long, device=device)
            first = start_step_in_epoch if mid_epoch else 0
            pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

            account = partial(_account, pending, loss_sum, correct, epoch=epoch, lr=cfg.lr,
                              checkpoints=run_dir / checkpoint.CHECKPOINT_DIR)

            bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", progress, first)
            epoch_lr = schedule.lr(epoch, epoch * steps_per_epoch)
            for k in range(first, steps_per_epoch):
                idx = dist_env.shard(perm[k * bs:(k + 1) * bs])
                if distort is None:
                    x = train_split.inputs[idx]
                else:
                    x = prep(distort(train_split.images[idx], gens["augment"]))
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = train_split.labels[idx]
                if schedule.per_step or k == first:
                    _set_lr(optimizer, schedule.lr(epoch, step))
                loss, scores = step_fn(x, y)
                pending.append((loss.detach(), scores.detach().argmax(1), y))
                step += 1
                settle = (k + 1) % account_every == 0
                if settle:
                    account(last_step=k)
                if bar is not None:
                    bar.update(1)
                # DDP ranks vote on stopping (a collective) only when they settle.
                if ((settle or dist_env.world == 1) and _should_stop(stop, dist_env, device)
                        and k + 1 < steps_per_epoch):
                    account(last_step=k)
                    train_seconds += time.perf_counter() - t0
                    if main:
                        path = save_checkpoint(epoch, k + 1, {
                            "order_state": order_state.tolist(), "loss_sum": float(loss_sum),
                            "correct": int(correct)})
                        log(f"interrupted at epoch {epoch + 1}, step {k + 1}; checkpoint "
                            f"{path}\nresume with: lenet train --resume {run_dir}")
                    raise TrainingInterrupted(f"training stopped by a signal; resume with "
                                              f"`lenet train --resume {run_dir}`")
            account(last_step=steps_per_epoch - 1)
            if bar is not None:
                bar.close()
            dist_env.all_sum(loss_sum, correct)
            train_loss = float(loss_sum) / seen
            if not math.isfinite(train_loss):
                raise TrainingError(f"the training loss became {train_loss} in epoch "
                                    f"{epoch + 1}; try a lower learning rate (now --lr {cfg.lr:g})")
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            test = evaluate_tensors(model, test_split.inputs, test_split.labels, eval_loss_fn,
                                    cfg.eval_batch_size)
            val = (evaluate_tensors(model, val_split.inputs, val_split.labels, eval_loss_fn,
                                    cfg.eval_batch_size) if val_split is not None else None)
            done = seen - (first * bs if mid_epoch else 0)
            m = EpochMetrics(epoch + 1, train_loss, int(correct) / seen, test.accuracy, test.loss,
                             val.accuracy if val else None, epoch_lr,
                             time.perf_counter() - t0, done / epoch_seconds)
            history.append(m)
            log(_format_epoch(m, cfg.epochs))
            if main:
                atomic.write_text(run_dir / "metrics.csv", _metrics_csv(history))
                if tb is not None:
                    tb.log_epoch(model, m)
                save_checkpoint(epoch + 1, 0, {})
            if _should_stop(stop, dist_env, device) and epoch + 1 < cfg.epochs:
                log(f"interrupted after epoch {epoch + 1}; resume with: "
                    f"lenet train --resume {run_dir}")
                raise TrainingInterrupted(f"training stopped by a signal; resume with "
                                          f"`lenet train --resume {run_dir}`")

    if test is None:  # resumed a run whose last epoch had already finished
        test = evaluate_tensors(model, test_split.inputs, test_split.labels, eval_loss_fn,
                                cfg.eval_batch_size)
    result = RunResult(cfg, run_dir, params, test, train_seconds, history)
    if main:
        weights.save(run_dir / weights.WEIGHTS_NAME, model,
                     meta(test.accuracy, epoch=cfg.epochs))
        if tb is not None:
            tb.close(cfg.to_dict(), {k: v for k, v in result.summary().items()
                                     if k in ("test_accuracy", "test_loss", "best_test_accuracy",
                                              "train_seconds")})
    log(f"test accuracy {test.accuracy:.4f} ({test.errors} errors of {test.total}), "
        f"{train_seconds:.1f}s training, {time.perf_counter() - t_start:.1f}s in all; "
        f"saved {run_dir / weights.WEIGHTS_NAME}")
    return result


def _account(pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
             loss_sum: torch.Tensor, correct: torch.Tensor, *, epoch: int, last_step: int,
             lr: float, checkpoints: Path) -> None:
    """Add the pending steps' (mean loss, predictions, labels) to the epoch's sums, in place.

    `last_step` is the 0-based index in the epoch of the last pending step. A non-finite loss
    raises TrainingError naming the epoch and the exact step where it first appeared.
    """
    if not pending:
        return
    losses = torch.stack([loss for loss, _, _ in pending])
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        step = last_step + 1 - (len(pending) - 1 - first)
        raise TrainingError(
            f"the training loss became {float(losses[first])} at epoch {epoch + 1}, step {step}; "
            f"try a lower learning rate (now --lr {lr:g}). The last good checkpoint is kept in "
            f"{checkpoints}")
    sizes = torch.tensor([len(y) for _, _, y in pending], dtype=torch.float64,
                         device=losses.device)
    loss_sum += (losses.double() * sizes).sum()
    hits = torch.cat([p for _, p, _ in pending]) == torch.cat([y for _, _, y in pending])
    correct += hits.sum()
    pending.clear()


def _should_stop(stop: threading.Event, dist_env: Distributed, device: torch.device) -> bool:
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


def _make_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
               loss_name: str, device: torch.device, cfg: TrainConfig
               ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            scores = model(x)
        loss = loss_fn(scores.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss, scores

    fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = step
    if cfg.compile:
        fn = torch.compile(step)
    elif not cfg.bf16 and cfg.optimizer == "sdlm":
        # The paper's per-pattern recipe: the same step with its gradients written out by hand,
        # ~2x faster than autograd at batch 1 (lenet.optim.pattern_step).
        from lenet.optim import pattern_step

        if pattern_step.supports(model, optimizer, loss_name):
            fn = pattern_step.PatternStep(model, optimizer, loss_name, cfg.rbf_j)
    if device.type != "cpu" or cfg.batch_size > 4:
        return fn

    def native_conv_step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-pattern training: at batch 1 oneDNN's per-call overhead dominates the tiny
        # convolutions, and ATen's native kernels make a LeNet step ~1.6x faster (the switch
        # covers forward and backward, both of which run inside `fn`). Ops this small gain
        # nothing from intra-op threads, and on a busy CPU a waiting second thread makes every
        # op ~5x slower, so one thread (restored when train() returns).
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            return fn(x, y)
        finally:
            torch.backends.mkldnn.enabled = enabled

    return native_conv_step


def _sample_inputs(split: Split, prep: Callable, distort: Callable | None,
                   gens: dict[str, torch.Generator], count: int = 500
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randperm(len(split.labels), generator=gens["order"])[:count]
    idx = idx.to(split.labels.device)
    if split.inputs is not None:
        return split.inputs[idx], split.labels[idx]
    return prep(distort(split.images[idx], gens["augment"])), split.labels[idx]


def _classes(dataset: str) -> list[str]:
    from lenet.data import DATASETS

    return list(DATASETS[dataset].classes)


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):  # -> tqdm | None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="step",
                file=sys.stderr)


def _tensorboard(run_dir: Path):  # -> TensorBoardLogger | None
    try:
        from lenet.viz.tensorboard import TensorBoardLogger
    except ImportError:  # tensorboard is a dependency, but a broken install must not stop training
        return None
    return TensorBoardLogger(run_dir)
