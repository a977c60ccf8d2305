"""Accuracy and loss of a model on a dataset split, from tensors or from saved weights.

Training and `lenet evaluate` share :func:`evaluate_tensors`, with the same batch size and
preprocessing, so evaluating a saved run reproduces its training-time accuracy exactly on CPU.

A weights file is decoded and its digest checked once (:func:`load`); the evaluations take the
:class:`Loaded` model, so that ``lenet report`` can evaluate it and then draw it.
:func:`evaluate_weights` is the one-call form for a path.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from lenet import data
from lenet.config import EVAL_BATCH_SIZE
from lenet.data import DATASETS
from lenet.data.transforms import Preprocessing
from lenet.models import eval_mode, weights
from lenet.models.losses import Loss, make_loss
from lenet.runtime.device import pick


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    errors: int
    total: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.inference_mode()
def _evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, loss_fn: Loss,
              batch_size: int, keep_scores: bool) -> tuple[EvalResult, torch.Tensor | None]:
    correct = torch.zeros((), dtype=torch.long, device=inputs.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
    kept: list[torch.Tensor] = []
    with eval_mode(model):
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size], labels[i:i + batch_size]
            scores = model(x).float()
            correct += (scores.argmax(1) == y).sum()
            loss_sum += loss_fn(scores, y).double() * len(y)
            if keep_scores:
                kept.append(scores)
    n = len(labels)
    n_correct = int(correct)
    result = EvalResult(accuracy=n_correct / n, loss=float(loss_sum) / n, errors=n - n_correct,
                        total=n)
    return result, (torch.cat(kept) if keep_scores else None)


def evaluate_tensors(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                     loss_fn: Loss, batch_size: int = EVAL_BATCH_SIZE) -> EvalResult:
    return _evaluate(model, inputs, labels, loss_fn, batch_size, keep_scores=False)[0]


def evaluate_with_scores(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                         loss_fn: Loss, batch_size: int = EVAL_BATCH_SIZE
                         ) -> tuple[EvalResult, torch.Tensor]:
    """:func:`evaluate_tensors` plus the (N, classes) float scores of the very same pass."""
    result, scores = _evaluate(model, inputs, labels, loss_fn, batch_size, keep_scores=True)
    assert scores is not None
    return result, scores


# --------------------------------------------------------------------------- saved weights
class Loaded(NamedTuple):
    """A model read once from its weights file, with the file's metadata."""

    model: nn.Module  # in eval mode, on the device it was loaded to
    meta: weights.WeightsMeta
    path: Path  # the weights file itself (a run directory resolved to its model.safetensors)


def load(path: str | os.PathLike[str], device: str = "cpu") -> Loaded:
    """Read and verify a run directory's or a file's weights, and build the model on `device`
    (``auto`` picks CUDA, then MPS, then the CPU)."""
    model, meta = weights.load_model(path, pick(device))
    return Loaded(model, meta, weights.resolve_path(path))


def evaluate_weights(path: str | os.PathLike[str], dataset: str | None = None,
                     device: str = "cpu", data_dir: str | None = None,
                     batch_size: int | None = None, test_subset: int = 0) -> dict:
    """Evaluate a run directory or weights file on a test set (default: its own dataset)."""
    return evaluate_loaded(load(path, device), dataset, data_dir, batch_size, test_subset)


def evaluate_loaded(loaded: Loaded, dataset: str | None = None, data_dir: str | None = None,
                    batch_size: int | None = None, test_subset: int = 0) -> dict:
    """:func:`evaluate_weights` for a model already loaded, on the device it lies on."""
    setup = _setup(loaded, dataset, data_dir, batch_size, test_subset)
    result = evaluate_tensors(loaded.model, setup.inputs, setup.labels, setup.loss_fn,
                              setup.batch_size)
    return setup.header(result)


@dataclass
class _Setup:
    loaded: Loaded
    dataset: str
    images: torch.Tensor  # (N, 28, 28) uint8, on the CPU
    labels: torch.Tensor  # (N,) int64, on the model's device
    inputs: torch.Tensor
    loss_name: str
    loss_fn: Loss
    batch_size: int

    def header(self, result: EvalResult) -> dict:
        meta = self.loaded.meta
        return {"weights": str(self.loaded.path), "model": meta.model, "dataset": self.dataset,
                "loss_name": self.loss_name, **result.to_dict(),
                "training_test_accuracy": meta.test_accuracy}


def _device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _setup(loaded: Loaded, dataset: str | None, data_dir: str | None,
           batch_size: int | None, test_subset: int) -> _Setup:
    meta = loaded.meta
    dev = _device(loaded.model)
    name = dataset or meta.dataset
    images, labels = data.load(name, "test", data_dir=data_dir)
    if test_subset:
        images, labels = images[:test_subset], labels[:test_subset]
    prep: Preprocessing = meta.preprocessing
    inputs = prep(images.to(dev))
    loss_name = meta.extra.get("loss", "cross-entropy")
    loss_fn = make_loss(loss_name, rbf_j=float(meta.extra.get("rbf_j", 1.0)))
    bs = batch_size or int(meta.extra.get("eval_batch_size", EVAL_BATCH_SIZE))
    return _Setup(loaded, name, images, labels.to(dev), inputs, loss_name, loss_fn, bs)


def run_test_subset(meta: weights.WeightsMeta, dataset: str | None = None) -> int:
    """The test subset the run was trained with (0: all), so that evaluating it reproduces the
    training-time accuracy; 0 when evaluating on another dataset."""
    if dataset is not None and dataset != meta.dataset:
        return 0
    return int((meta.extra.get("config") or {}).get("test_subset") or 0)


@dataclass
class DetailedEval:
    """Everything `lenet evaluate` reports: the summary plus per-digit predictions."""

    summary: dict
    classes: list[str]
    images: torch.Tensor  # (N, 28, 28) uint8, CPU
    labels: torch.Tensor  # (N,) int64, CPU
    predictions: torch.Tensor  # (N,) int64, CPU
    confidence: torch.Tensor  # (N,) float, softmax probability of the predicted class
    run_test_subset: int = 0  # the test subset the run was trained with (0: all or unknown)
    scores: torch.Tensor | None = None  # (N, classes) float, CPU: what the rejection ranks


def evaluate_detailed(loaded: Loaded, dataset: str | None = None, data_dir: str | None = None,
                      batch_size: int | None = None, test_subset: int | None = None
                      ) -> DetailedEval:
    """:func:`evaluate_loaded` plus predictions and confidences from the same forward pass.

    `test_subset` None means the subset the run was trained with (see :func:`run_test_subset`).
    """
    own_subset = run_test_subset(loaded.meta, dataset)
    if test_subset is None:
        test_subset = own_subset
    setup = _setup(loaded, dataset, data_dir, batch_size, test_subset)
    result, scores = evaluate_with_scores(loaded.model, setup.inputs, setup.labels,
                                          setup.loss_fn, setup.batch_size)
    pred = scores.argmax(1)  # exactly what the accuracy counted
    conf = torch.softmax(scores.double(), dim=1).gather(1, pred[:, None]).squeeze(1)
    summary = {**setup.header(result), "test_subset": test_subset}
    return DetailedEval(summary, _class_names(setup, scores.shape[1]), setup.images.cpu(),
                        setup.labels.cpu(), pred.cpu(), conf.float().cpu(), own_subset,
                        scores.cpu())


def _class_names(setup: _Setup, n: int) -> list[str]:
    meta = setup.loaded.meta
    if setup.dataset == meta.dataset and len(meta.classes) == n:
        return list(meta.classes)
    spec = DATASETS.get(setup.dataset)
    names = list(spec.classes) if spec is not None else []
    return names if len(names) == n else [str(i) for i in range(n)]


# --------------------------------------------------------------------------- rejection
# The 1998 paper's Fig. 10: how many test digits must be rejected (set aside for a human) so
# that the error on the rest is 0.5 %. A digit is rejected when the margin between its two
# highest scores is small; the least confident digits go first.
REJECT_TARGET = 0.5  # percent error on the digits kept


class RejectionCurve(NamedTuple):
    """Error on the kept digits after rejecting the least confident ones, point by point.

    Rejection is a threshold on the margin, so digits with equal margins are rejected together:
    the curve has a point at every distinct margin (and none where every digit is rejected,
    since the error of no digits means nothing).
    """

    rejected: torch.Tensor  # (P,) float64, percent of the digits rejected, increasing from 0
    error: torch.Tensor  # (P,) float64, percent error on the digits kept
    margin: torch.Tensor  # (P,) float64, the margin every kept digit exceeds (-inf at 0 %)


def margins(scores: torch.Tensor) -> torch.Tensor:
    """(N,) top score minus second score; NaN (a broken score) counts as the least confident."""
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (N, classes >= 2), got {tuple(scores.shape)}")
    top2 = scores.detach().double().topk(2, dim=1).values
    return torch.nan_to_num(top2[:, 0] - top2[:, 1], nan=-math.inf)


def rejection_curve(scores: torch.Tensor, labels: torch.Tensor) -> RejectionCurve:
    """Error on the digits kept against the percentage rejected, lowest margins rejected first.

    A digit is wrong when the argmax of its scores is not its label, as the test error counts.
    """
    n = len(labels)
    if n == 0 or len(scores) != n:
        raise ValueError(f"need as many score rows as labels (and some), got {len(scores)} "
                         f"and {n}")
    scores, labels = scores.detach().cpu(), labels.detach().cpu()
    m = margins(scores)
    order = torch.argsort(m, stable=True)
    m_sorted = m[order]
    wrong = (scores.argmax(1) != labels)[order].to(torch.float64)
    # k digits rejected: k = 0 and every k at which the margin changes (a whole tie group).
    ks = torch.cat([torch.zeros(1, dtype=torch.long),
                    torch.nonzero(m_sorted[1:] != m_sorted[:-1]).flatten() + 1])
    wrong_rejected = torch.cat([torch.zeros(1, dtype=torch.float64), wrong.cumsum(0)])[ks]
    kept = (n - ks).to(torch.float64)
    error = 100.0 * (wrong.sum() - wrong_rejected) / kept
    below = torch.cat([torch.full((1,), -math.inf, dtype=torch.float64), m_sorted])[ks]
    return RejectionCurve(100.0 * ks.to(torch.float64) / n, error, below)


def rejection_at(scores: torch.Tensor, labels: torch.Tensor,
                 target_error: float = REJECT_TARGET) -> float | None:
    """The smallest percentage of digits to reject (lowest margins first) so that the error on
    the rest is at most `target_error` percent: 0.0 when it already is; None when only
    rejecting every digit would do (the target is unreachable)."""
    if not (math.isfinite(target_error) and 0 <= target_error < 100):
        raise ValueError(f"target error must be a percentage in [0, 100), got {target_error}")
    curve = rejection_curve(scores, labels)
    # A relative tolerance, so that 1 error in 200 digits meets 0.5 % despite rounding.
    ok = torch.nonzero(curve.error <= target_error * (1 + 1e-12)).flatten()
    return float(curve.rejected[ok[0]]) if len(ok) else None


# --------------------------------------------------------------------------- strings read
CONFIDENT = 1.645  # one-sided 95 %: the z of the bound that choosing a threshold keeps to


def error_bound(wrong: np.ndarray, accepted: np.ndarray, z: float = CONFIDENT) -> np.ndarray:
    """The Wilson score upper bound on the error rate of `accepted` readings of which `wrong`
    are wrong (elementwise; `z` standard deviations, one-sided): where the true rate may lie
    for all the sample says, as a threshold chosen on a sample must allow for.

    >>> [round(float(b), 4) for b in error_bound(np.array([0, 10]), np.array([100, 1000]))]
    [0.0263, 0.0167]
    """
    n = np.asarray(accepted, np.float64)
    p = np.asarray(wrong, np.float64) / n
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (p + z * z / (2 * n) + spread) / (1 + z * z / n)


def read_at_error(confidence: np.ndarray, correct: np.ndarray, max_error: float = 0.01,
                  z: float = 0.0) -> tuple[float, float | None]:
    """The largest share of readings accepted, most confident first, with at most `max_error`
    of them wrong, and the confidence threshold (accept >= it) that accepts them (None when
    none does). Readings of equal confidence are accepted or rejected together.

    With `z` > 0 the bound (:func:`error_bound`) of the error rate, not the rate seen, must be
    at most `max_error`: how a threshold is chosen on held-out strings so that strings it has
    not seen keep to the target too (the rate seen at a threshold chosen on them is the low
    side of its noise). With `z` = 0 it is the paper's measure of a part (Sec. X).

    >>> read_at_error(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, True, False, True]))
    (0.5, 0.8)
    """
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence {confidence.shape} and correct {correct.shape} differ")
    if confidence.size == 0:
        return 0.0, None
    order = np.argsort(-confidence, kind="stable")
    conf, wrong = confidence[order], np.cumsum(~correct[order])
    accepted = np.arange(1, len(conf) + 1)
    # Only where the next reading is less confident can the threshold fall.
    last = np.r_[conf[1:] < conf[:-1], True]
    error = error_bound(wrong, accepted, z) if z > 0 else wrong / accepted
    ok = last & (error <= max_error * (1 + 1e-12))
    if not ok.any():
        return 0.0, None
    k = int(np.flatnonzero(ok)[-1])
    return float(accepted[k] / len(conf)), float(conf[k])


# --------------------------------------------------------------------------- speed
@torch.inference_mode()
def seconds_per_digit(model: nn.Module, inputs: torch.Tensor, batch_size: int = 2000) -> float:
    """Wall-clock seconds per digit of a batched forward pass over `inputs` (after one warm-up
    batch, so that lazy initialisation is not counted)."""
    if len(inputs) == 0:
        raise ValueError("no inputs to time")
    device = inputs.device
    with eval_mode(model):
        model(inputs[:batch_size])
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(inputs), batch_size):
            model(inputs[i:i + batch_size])
        _sync(device)
        return (time.perf_counter() - t0) / len(inputs)


def _sync(device: torch.device) -> None:
    # CUDA runs asynchronously: without waiting, the clock would stop before the work does.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paper_figures(loaded: Loaded, target_error: float = REJECT_TARGET,
                  data_dir: str | None = None) -> dict[str, float | int | None]:
    """What ``lenet paper`` reports of a trained net beside its error, on the test digits it was
    trained with: the rejection for `target_error` (Fig. 10) and the measured seconds per digit
    of a batched forward pass on its device (Fig. 12)."""
    setup = _setup(loaded, None, data_dir, None, run_test_subset(loaded.meta))
    result, scores = evaluate_with_scores(loaded.model, setup.inputs, setup.labels,
                                          setup.loss_fn, setup.batch_size)
    return {"test_digits": result.total, "error": 100.0 * (1.0 - result.accuracy),
            "rejection": rejection_at(scores, setup.labels, target_error),
            "seconds_per_digit": seconds_per_digit(loaded.model, setup.inputs,
                                                   setup.batch_size)}
