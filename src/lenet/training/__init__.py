"""Training: the loop (:mod:`.loop`), the run it writes (:mod:`.run`), its steps and optimizers,
and sweeps of runs.

``lenet.train(...)`` is :func:`train`.
"""

from __future__ import annotations

import os

from lenet.config import TrainConfig, resolve
from lenet.console import Log
from lenet.training.loop import fit
from lenet.training.result import RunResult, TrainingError
from lenet.training.signals import TrainingInterrupted


def train(config: str | os.PathLike[str] | TrainConfig | None = None, *, log: Log | None = None,
          progress: bool | None = None, resume: bool = False, overwrite: bool = False,
          **overrides: object) -> RunResult:
    """``lenet.train(...)``: train as `lenet train` does, from Python.

    `config` is a shipped recipe's name (``"lenet5-fast"``), a YAML path, a :class:`TrainConfig`
    or None (the model's own recipe, else ``lenet5``); `overrides` are TrainConfig keys
    (``epochs=2, train_subset=6000``). Returns the :class:`RunResult`: ``.metrics``, ``.model``
    (trained, in eval mode), ``.run_dir``, ``.history``.

    >>> result = lenet.train("lenet5", epochs=1, train_subset=6000)
    """
    if isinstance(config, TrainConfig):
        values = {**config.to_dict(), **overrides}
        values.pop("run_id", None)
        cfg = resolve(None, {"model": config.model, **values})
    else:
        cfg = resolve(None if config is None else os.fspath(config), overrides)
    return fit(cfg, log=log, progress=progress, resume=resume, overwrite=overwrite)


__all__ = ["RunResult", "TrainingError", "TrainingInterrupted", "fit", "train"]
