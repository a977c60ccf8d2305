"""The trainer: the whole dataset on the device, one randperm per epoch, batches by indexing.

No DataLoader and no per-sample Python in the hot path: the digits are loaded once as uint8,
preprocessed once on the device (or per batch when distortions are on), and every batch is a
gather from that tensor. What a run leaves behind (``runs/<time>-<model>/``):

- ``config.json``: the fully resolved :class:`~lenet.config.TrainConfig`;
- ``metrics.csv``: one row per epoch;
- ``initial.safetensors`` and ``model.safetensors``: weights at the start and the end, with the
  preprocessing and the final test accuracy in their metadata;
- TensorBoard event files (``tensorboard --logdir runs``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet import atomic, weights
from lenet.config import TrainConfig
from lenet.errors import LenetError
from lenet.evaluate import EvalResult, evaluate_tensors
from lenet.losses import make_loss
from lenet.models import count_parameters, get_spec

Log = Callable[[str], None]


class TrainingError(LenetError):
    """Training cannot go on (for example the loss became NaN)."""


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
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "sdlm":
        from lenet.optim.sdlm import SDLM

        return SDLM(params, lr=cfg.lr, rbf_j=cfg.rbf_j, seed=cfg.seed)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}")


class Schedule:
    """Learning rate as a function of (epoch, step): per-epoch or per-step schedules alike."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.total = cfg.epochs * steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
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


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


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


def train(cfg: TrainConfig, log: Log | None = None, progress: bool | None = None) -> RunResult:
    """Train `cfg.model` on `cfg.dataset`, evaluate it on the test set, save the run."""
    from lenet.device import pick

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    progress = sys.stderr.isatty() if progress is None else progress
    t_start = time.perf_counter()
    device = pick(cfg.device)
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
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    classes = _classes(cfg.dataset)
    meta_extra = {"loss": loss_name, "rbf_j": cfg.rbf_j, "eval_batch_size": cfg.eval_batch_size,
                  "config": cfg.to_dict()}

    def meta(acc: float | None, **extra: Any) -> weights.WeightsMeta:
        return weights.WeightsMeta(cfg.model, prep, cfg.dataset, classes, acc,
                                   {**meta_extra, **extra})

    weights.save(run_dir / "initial.safetensors", model, meta(None, epoch=0))
    writer = _tensorboard(run_dir) if cfg.tensorboard else None

    optimizer = make_optimizer(cfg, model)
    n = len(train_split.labels)
    bs = cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    schedule = Schedule(cfg, steps_per_epoch)
    step_fn = _make_step(model, optimizer, loss_fn, device, cfg)
    # The epoch order comes from its own CPU generator so that the same seed gives the same
    # batches on every device (and CUDA's RNG stays free for dropout-like ops).
    order_gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    log(f"training {cfg.model} ({params:,} parameters) on {cfg.dataset}: {n:,} digits, "
        f"{cfg.epochs} epochs, batch {bs}, {cfg.optimizer} lr {cfg.lr:g}, device {device}; "
        f"run dir {run_dir}")
    history: list[EpochMetrics] = []
    train_seconds = 0.0
    step = 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        if hasattr(optimizer, "before_epoch"):
            # SDLM re-estimates its per-parameter step sizes on a sample before every pass.
            optimizer.before_epoch(model, _sample_inputs(train_split, prep, distort, aug_gen,
                                                         order_gen), loss_name)
        perm = torch.randperm(n, generator=order_gen).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", progress)
        epoch_lr = schedule.lr(epoch, step)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if distort is None:
                x = train_split.inputs[idx]
            else:
                x = prep(distort(train_split.images[idx], aug_gen))
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = train_split.labels[idx]
            if schedule.per_step or step == epoch * steps_per_epoch:
                _set_lr(optimizer, schedule.lr(epoch, step))
            loss, scores = step_fn(x, y)
            loss_sum += loss.detach().double() * len(y)
            correct += (scores.detach().argmax(1) == y).sum()
            step += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        train_loss = float(loss_sum) / n
        if not math.isfinite(train_loss):
            raise TrainingError(f"the training loss became {train_loss} in epoch {epoch + 1}; "
                                f"try a lower learning rate (now --lr {cfg.lr:g})")
        epoch_train_seconds = time.perf_counter() - t0
        train_seconds += epoch_train_seconds
        test = evaluate_tensors(model, test_split.inputs, test_split.labels, eval_loss_fn,
                                cfg.eval_batch_size)
        val = (evaluate_tensors(model, val_split.inputs, val_split.labels, eval_loss_fn,
                                cfg.eval_batch_size) if val_split is not None else None)
        m = EpochMetrics(epoch + 1, train_loss, int(correct) / n, test.accuracy, test.loss,
                         val.accuracy if val else None, epoch_lr, time.perf_counter() - t0,
                         n / epoch_train_seconds)
        history.append(m)
        log(_format_epoch(m, cfg.epochs))
        atomic.write_text(run_dir / "metrics.csv", _metrics_csv(history))
        if writer is not None:
            writer.log_epoch(model, m)

    weights.save(run_dir / weights.WEIGHTS_NAME, model, meta(test.accuracy, epoch=cfg.epochs))
    if writer is not None:
        writer.close(cfg.to_dict(), {"test_accuracy": test.accuracy, "test_loss": test.loss,
                                     "test_errors": test.errors, "params": params,
                                     "train_seconds": train_seconds})
    result = RunResult(cfg, run_dir, params, test, train_seconds, history)
    log(f"test accuracy {test.accuracy:.4f} ({test.errors} errors of {test.total}), "
        f"{train_seconds:.1f}s training, {time.perf_counter() - t_start:.1f}s in all; "
        f"saved {run_dir / weights.WEIGHTS_NAME}")
    return result


def _make_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
               device: torch.device, cfg: TrainConfig
               ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            scores = model(x)
        loss = loss_fn(scores.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss, scores

    fn = torch.compile(step) if cfg.compile else step
    if device.type != "cpu" or cfg.batch_size > 4:
        return fn

    def native_conv_step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-pattern training: at batch 1 oneDNN's per-call overhead dominates the tiny
        # convolutions, and ATen's native kernels make a LeNet step ~1.6x faster (the switch
        # covers forward and backward, both of which run inside `fn`).
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            return fn(x, y)
        finally:
            torch.backends.mkldnn.enabled = enabled

    return native_conv_step


def _sample_inputs(split: Split, prep: Callable, distort: Callable | None,
                   aug_gen: torch.Generator, order_gen: torch.Generator, count: int = 500
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randperm(len(split.labels), generator=order_gen)[:count].to(split.labels.device)
    if split.inputs is not None:
        return split.inputs[idx], split.labels[idx]
    return prep(distort(split.images[idx], aug_gen)), split.labels[idx]


def _classes(dataset: str) -> list[str]:
    from lenet.data import DATASETS

    return list(DATASETS[dataset].classes)


def _progress(total: int, desc: str, enabled: bool):  # -> tqdm | None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="step", file=sys.stderr)


def _tensorboard(run_dir: Path):  # -> lenet.viz.tensorboard.TensorBoardLogger | None
    try:
        from lenet.viz.tensorboard import TensorBoardLogger

        return TensorBoardLogger(run_dir)
    except ImportError:  # tensorboard is a dependency, but a broken install must not stop training
        return None
