"""The trainer's TensorBoard logger: grouped scalars, weight histograms, first-layer kernels,
and the run's hyperparameters with its final metrics in the HParams view of the *same* run.

``SummaryWriter.add_hparams`` writes a separate sub-run (a timestamped folder), which splits one
training run in two in TensorBoard's run list. Instead the three hparams summaries (experiment,
session start, session end) are written into the run's own event file, and the final metrics are
logged as ordinary scalars under ``hparams/…``, which is what the HParams view reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lenet import console
from lenet.analysis.modules import conv_layers, conv_weight
from lenet.storage.history import EpochMetrics

NOT_INSTALLED = ("TensorBoard logging is off: tensorboard is not installed (pip install "
                 "'lenet[tensorboard]')")


class _Notice:
    given = False  # the notice is shown once per process, not once per run


def open_logger(run_dir: str | os.PathLike[str]) -> TensorBoardLogger | None:
    """The run's TensorBoard logger, or None where tensorboard (an extra: ``lenet[tensorboard]``,
    part of ``lenet[all]``) is not installed. A run asks for TensorBoard only when it was
    asked for, or is installed (:func:`lenet.config.resolve`); so the notice that it is off is
    shown to those who asked, once per process, and the run's config.json records
    ``"tensorboard": false``."""
    try:
        return TensorBoardLogger(run_dir)
    except ImportError:
        if not _Notice.given:
            _Notice.given = True
            console.warn(NOT_INSTALLED)
        return None


def kernel_image(weight: torch.Tensor, cols: int = 8, zoom: int = 8) -> torch.Tensor:
    """(out, in, kh, kw) kernels -> a (3, H, W) float image in [0, 1]: one tile per
    (output, input) pair, blue negative, red positive, white zero, on one symmetric scale."""
    w = weight.detach().float().cpu()
    w = w.reshape(-1, *w.shape[-2:])
    n, kh, kw = w.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    scale = float(w.abs().max()) or 1.0
    v = (w / scale).clamp(-1, 1)  # (n, kh, kw) in [-1, 1]
    pos, neg = v.clamp(min=0), (-v).clamp(min=0)
    rgb = torch.stack([1 - neg, 1 - pos - neg, 1 - pos], dim=1)  # red for +, blue for -
    gap = 1
    out = torch.full((3, rows * (kh + gap) + gap, cols * (kw + gap) + gap), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = gap + r * (kh + gap), gap + c * (kw + gap)
        out[:, y:y + kh, x:x + kw] = rgb[i]
    return out.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)


def _hparam_value(v: object) -> bool | int | float | str:
    if isinstance(v, (bool, int, float, str)):
        return v
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or "[]"
    return str(v)


class TensorBoardLogger:
    """What the trainer writes to ``RUN_DIR/events.out.tfevents.*``.

    Tags: ``Loss/train``, ``Loss/test``, ``Accuracy/train``, ``Accuracy/test``,
    ``Accuracy/val`` (with a validation split), ``LR``, ``Time/epoch_seconds``; histograms
    ``Weights/<param>``; the image ``Kernels/<first conv>``; and ``hparams/<metric>`` at the end.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        """ImportError where tensorboard is not installed (:func:`open_logger` says so)."""
        from torch.utils.tensorboard import (  # noqa: PLC0415  (extra: tensorboard)
            SummaryWriter,
        )

        self.writer = SummaryWriter(log_dir=str(Path(run_dir)))

    def log_epoch(self, model: nn.Module, m: EpochMetrics) -> None:
        w, step = self.writer, m.epoch
        w.add_scalar("Loss/train", m.train_loss, step)
        w.add_scalar("Loss/test", m.test_loss, step)
        w.add_scalar("Accuracy/train", m.train_accuracy, step)
        w.add_scalar("Accuracy/test", m.test_accuracy, step)
        if m.val_accuracy is not None:
            w.add_scalar("Accuracy/val", m.val_accuracy, step)
        if m.val_loss is not None:
            w.add_scalar("Loss/val", m.val_loss, step)
        w.add_scalar("LR", m.lr, step)
        w.add_scalar("Time/epoch_seconds", m.seconds, step)
        for name, p in model.named_parameters():
            if p.numel() > 1:
                w.add_histogram(f"Weights/{name}", p.detach().float().cpu(), step)
        convs = conv_layers(model)
        if convs:
            name, module = convs[0]
            w.add_image(f"Kernels/{name}", kernel_image(conv_weight(module)), step)
        w.flush()

    def close(self, config: Mapping[str, object],
              final_metrics: Mapping[str, float | None]) -> None:
        """Hyperparameters and final metrics into the HParams view, then close the file."""
        from torch.utils.tensorboard.summary import (  # noqa: PLC0415  (extra: tensorboard)
            hparams,
        )

        hp = {k: _hparam_value(v) for k, v in config.items()}
        metrics = {f"hparams/{k}": float(v) for k, v in final_metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        exp, ssi, sei = hparams(hp, metrics)
        fw = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v)
        self.writer.close()
