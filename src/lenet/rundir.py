"""The run directory: the one place that knows what a run leaves behind and how it is named.

``runs/<time>-<name>/`` (:func:`default`) holds:

- ``config.json`` (:data:`CONFIG`): the fully resolved training config;
- ``metrics.csv`` (:data:`METRICS`): one row per epoch;
- ``initial.safetensors`` / ``model.safetensors`` (:data:`INITIAL`, :data:`WEIGHTS`): the
  weights before and after training (read them with :mod:`lenet.weights`);
- ``checkpoints/`` (:data:`CHECKPOINTS`): what ``lenet train --resume`` continues from;
- ``train.log`` (:data:`LOG`): the run's stderr, when a sweep started it.

Every write is atomic. Training, ``--resume``, ``report``, ``compare``, ``sweep`` and ``paper``
all go through this module, so a file is renamed in one place.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lenet import atomic
from lenet.errors import LenetError

CONFIG = "config.json"
METRICS = "metrics.csv"
INITIAL = "initial.safetensors"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
LOG = "train.log"

PathLike = str | os.PathLike[str]


class RunDirError(LenetError):
    """A run directory is missing, or one of its files cannot be read."""


def default(name: str, root: PathLike = "runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<name>``: a new folder for a run, sweep or paper table."""
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def require(run_dir: PathLike) -> Path:
    """`run_dir` as a Path, or a clear error if it is not a directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (`lenet train --run-dir` makes one)")
    return path


def write_config(run_dir: PathLike, config: Mapping[str, Any]) -> Path:
    return atomic.write_text(Path(run_dir) / CONFIG, json.dumps(dict(config), indent=2) + "\n")


def read_config(run_dir: PathLike, required: bool = False) -> dict[str, Any]:
    """The run's saved config; ``{}`` if it has none (an error when `required`)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        if required:
            raise RunDirError(f"{run_dir}: no {CONFIG} there; is it a run directory made by "
                              "`lenet train`?")
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: cannot read the saved config ({e})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object of config keys, got "
                          f"{type(data).__name__}")
    return data


def write_metrics(run_dir: PathLike, columns: Sequence[str],
                  rows: Sequence[Mapping[str, Any]]) -> Path:
    """metrics.csv with `columns` as its header; a None value is written as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return atomic.write_text(Path(run_dir) / METRICS, buf.getvalue())


def read_metrics(run_dir: PathLike) -> list[dict[str, str]]:
    """metrics.csv's rows as strings (``[]`` if the run has none yet)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunDirError(f"{path}: cannot read the metrics ({e})") from None
