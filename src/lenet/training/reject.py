"""The reject margin of a recipe's weights, chosen on held-out *training* digits.

The 1998 paper (Fig. 10) reports how many digits must be set aside for a human so that the
error on the rest is 0.5 %; a reader that says "unsure" needs the threshold that does that.
It must never be chosen on the test digits: here it is chosen on the validation split of a run
(``--set val_size=N``: training digits the run held out, never trained on), with the rejection
curve of :mod:`lenet.analysis.evaluate` (the margin between the two highest scores, lowest
rejected first). Bundled weights trained on every training digit take the margin of a run of
the same recipe and seed with a validation split (`lenet weights publish --reject-from`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lenet.analysis.evaluate import REJECT_TARGET, rejection_curve
from lenet.config import resolve
from lenet.errors import ConfigError
from lenet.models import weights
from lenet.storage import rundir
from lenet.training.batches import load_splits


@dataclass(frozen=True)
class RejectMargin:
    """The margin chosen, and what it does on the held-out digits it was chosen on."""

    margin: float  # predictions whose top-two margin is at most this are unsure
    target_error: float  # percent error wanted on the digits kept
    rejected: float  # percent of the held-out digits rejected at that margin
    error: float  # percent error on the rest
    digits: int  # held-out training digits it was chosen on


def choose_margin(scores: torch.Tensor, labels: torch.Tensor,
                  target_error: float = REJECT_TARGET) -> RejectMargin:
    """The smallest margin threshold whose rejections leave at most `target_error` percent
    error on the digits kept (0.0, only exact ties unsure, when the error already is).

    >>> s = torch.tensor([[5.0, 0.0], [0.2, 0.0], [3.0, 0.0], [0.0, 0.1]])
    >>> round(choose_margin(s, torch.tensor([0, 1, 0, 1]), target_error=0.0).margin, 6)
    0.2
    """
    curve = rejection_curve(scores, labels)
    ok = torch.nonzero(curve.error <= target_error * (1 + 1e-12)).flatten()
    if not len(ok):
        raise ValueError(f"no margin leaves at most {target_error:g} % error on these digits")
    i = int(ok[0])
    below = float(curve.margin[i])
    return RejectMargin(max(below, 0.0) if math.isfinite(below) else 0.0, target_error,
                        float(curve.rejected[i]), float(curve.error[i]), len(labels))


def held_out_margin(run: str | os.PathLike[str], target_error: float = REJECT_TARGET
                    ) -> RejectMargin:
    """:func:`choose_margin` for the final weights of run directory `run`, on the run's own
    validation split (rebuilt from its config.json, seeded as training made it)."""
    saved = rundir.read_config(run, required=True)
    saved.pop(rundir.RUN_ID, None)
    cfg = resolve(None, saved, source=str(Path(run) / rundir.CONFIG))
    if not (cfg.val_size or cfg.val_fraction):
        raise ConfigError(f"{run}: this run held out no training digits, so no reject margin "
                          "can be chosen on it; train one with --set val_size=10000")
    _, val, _ = load_splits(cfg, torch.device("cpu"))
    assert val is not None  # a validation size was set: load_splits made the split
    model, meta = weights.load_model(run)
    with torch.inference_mode():
        scores = torch.cat([model(meta.preprocessing(val.images[i:i + cfg.eval_batch_size]))
                            for i in range(0, len(val.labels), cfg.eval_batch_size)])
    return choose_margin(scores.float(), val.labels, target_error)
