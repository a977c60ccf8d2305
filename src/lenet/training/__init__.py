"""Training: the loop (:mod:`.loop`), the run it writes (:mod:`.run`), its steps and optimizers,
and sweeps of runs. ``lenet.train(...)`` is :func:`train`.
"""

from __future__ import annotations

import os

from lenet.config import TrainConfig, resolve
from lenet.console import Log
from lenet.runtime.environment import check_environment
from lenet.training.loop import fit
from lenet.training.result import RunMetrics, RunResult, TrainingError
from lenet.training.signals import TrainingInterrupted


def train(config: str | os.PathLike[str] | TrainConfig | None = None, *,
          model: str | None = None, init_weights: str | os.PathLike[str] | None = None,
          log: Log | None = None, progress: bool | None = None, resume: bool = False,
          overwrite: bool = False, **overrides: object) -> RunResult:
    """Train as ``lenet train`` does, from Python; the run is saved in its run directory.

    `config` is a shipped recipe's name (``"lenet5-fast"``), a YAML path, a
    :class:`~lenet.config.TrainConfig` or None (the `model`'s own recipe, else ``lenet5``).
    `model` is a registry name (``lenet.list_models()``). `init_weights` starts from weights
    instead of a fresh initialization (fine-tuning): bundled ones by name or ``arch.tag``
    (``"lenet5.mnist"``), a run directory or a ``.safetensors`` file, of the same model; layers
    whose shapes differ keep their fresh initialization, named in one log line. `overrides`
    are the other config keys (``epochs=2, train_subset=6000``; see ``lenet train --help``).
    `progress` shows tqdm bars (None: on a terminal). Returns the :class:`RunResult`:
    ``.metrics``, ``.model`` (trained, in eval mode), ``.run_dir``, ``.history``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as runs:
    ...     result = train("lenet5", epochs=1, train_subset=512, test_subset=256,
    ...                    progress=False, tensorboard=False, run_dir=f"{runs}/run")
    >>> result.metrics["epochs"], result.model.training
    (1, False)
    """
    check_environment()  # a bad OMP_NUM_THREADS or LENET_DATA_DIR is one clear error, up front
    if model is not None:
        if not isinstance(model, str):
            raise TypeError(
                f"lenet.train(model=...) takes a registry name such as 'lenet5' (see "
                f"lenet.list_models()), not a {type(model).__name__}: to train an architecture "
                "of your own, register it (lenet.models.register) and pass its name; to start "
                "from weights you have, pass init_weights= a run directory or a .safetensors "
                "file (lenet.models.weights.save writes one)")
        overrides["model"] = model
    if init_weights is not None:
        overrides["init_weights"] = os.fspath(init_weights)
    if isinstance(config, TrainConfig):
        values = {**config.to_dict(), **overrides}
        values.pop("run_id", None)
        cfg = resolve(None, {"model": config.model, **values})
    elif config is None or isinstance(config, (str, os.PathLike)):
        cfg = resolve(None if config is None else os.fspath(config), overrides)
    else:
        raise TypeError(f"lenet.train's config is a recipe name, a YAML path or a TrainConfig, "
                        f"not a {type(config).__name__}; a model goes by name: "
                        "lenet.train(model='lenet5')")
    return fit(cfg, log=log, progress=progress, resume=resume, overwrite=overwrite)


__all__ = ["RunMetrics", "RunResult", "TrainingError", "TrainingInterrupted", "fit", "train"]
