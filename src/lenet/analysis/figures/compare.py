"""``lenet compare RUN_DIR RUN_DIR ...``: runs side by side, and their accuracy curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lenet.analysis.figures import plots
from lenet.errors import ConfigError
from lenet.models import count_parameters, create, weights
from lenet.storage import rundir
from lenet.storage.history import from_csv, select


def run_row(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One run's line of the comparison, from its config.json, metrics.csv and weights."""
    run = rundir.require(run_dir)
    # A row whose epoch is not a number (an edited or damaged file) is left out: a gap.
    rows = plots.numbered(rundir.read_metrics(run, required=("epoch", "test_accuracy")))
    config = rundir.read_config(run)
    has_weights = (run / rundir.WEIGHTS).is_file()
    if not rows and not has_weights:
        raise rundir.RunDirError(f"{run}: neither {rundir.METRICS} nor {rundir.WEIGHTS}; "
                                 "is this a `lenet train` run directory?")
    meta = weights.read(run)[1] if has_weights else None
    model = config.get("model") or (meta.model if meta else "?")
    acc = [float(r["test_accuracy"]) for r in rows]
    val = [float(r["val_accuracy"]) for r in rows if r.get("val_accuracy")]
    # The best epoch is chosen on validation, never on test (no validation split: no best),
    # by the trainer's own rule.
    chosen = select([from_csv(r) for r in rows])
    try:
        params = count_parameters(create(model))
    except ConfigError:  # a model no longer in the registry: still compare what is on disk
        params = None
    seconds = [float(r["seconds"]) for r in rows if r.get("seconds")]
    return {
        "run_dir": str(run),
        "model": model,
        "dataset": config.get("dataset") or (meta.dataset if meta else "?"),
        "epochs": len(rows),
        "best_val_accuracy": chosen.best_val_accuracy,
        "best_epoch": chosen.best_epoch,
        "final_accuracy": (meta.test_accuracy if meta and meta.test_accuracy is not None
                           else (acc[-1] if acc else None)),
        "final_val_accuracy": val[-1] if len(val) == len(rows) and val else None,
        "params": params,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "epochs_list": [int(r["epoch"]) for r in rows],
        "accuracy_list": acc,
    }


def compare(run_dirs: list[str], out: str | os.PathLike[str] | None = None
            ) -> dict[str, Any]:
    """Each run's row of the comparison; with `out`, their accuracy curves drawn into that PNG
    (None: nothing is written)."""
    runs = [run_row(d) for d in run_dirs]
    labels = _labels(runs)
    result: dict[str, Any] = {"runs": runs, "plot": None}
    if out is not None:
        curves = [(label, r["epochs_list"], r["accuracy_list"])
                  for label, r in zip(labels, runs, strict=True) if r["accuracy_list"]]
        plots.accuracy_curves(curves, out)
        result["plot"] = str(Path(out))
    return result


def _labels(runs: list[dict[str, Any]]) -> list[str]:
    return [f"{r['model']} ({Path(r['run_dir']).name})" for r in runs]


def format_table(runs: list[dict[str, Any]]) -> str:
    header = ["run", "model", "dataset", "epochs", "best val (epoch)", "final acc", "params",
              "s/epoch"]
    body = []
    for r in runs:
        best = (f"{r['best_val_accuracy']:.4f} ({r['best_epoch']})"
                if r["best_val_accuracy"] is not None else "-")
        body.append([Path(r["run_dir"]).name, r["model"], r["dataset"], str(r["epochs"]), best,
                     f"{r['final_accuracy']:.4f}" if r["final_accuracy"] is not None else "-",
                     f"{r['params']:,}" if r["params"] is not None else "-",
                     f"{r['seconds_per_epoch']:.2f}" if r["seconds_per_epoch"] else "-"])
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    for row in body:
        lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)
