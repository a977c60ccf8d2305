"""``lenet paper``: train the 1998 paper's MNIST rows and put our errors next to its Fig. 9.

Each row is a shipped recipe (plus ``distort`` for the distorted rows), trained once per seed
by `lenet sweep` (:func:`lenet.sweep.run_sweep`): every run its own process, ``--jobs`` at a time.
The table (Markdown and JSON) goes to the run dir:
method | paper test error % | ours mean ± std | parameters | training time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet import atomic, console, rundir
from lenet.errors import ConfigError


@dataclass(frozen=True)
class Row:
    name: str  # what --only selects
    method: str  # as the paper's Fig. 9 names it
    recipe: str
    paper_error: float  # percent
    distort: bool = False
    train_error: bool = False  # report the training error after pass 19 instead of test error


ROWS: tuple[Row, ...] = (
    Row("linear", "linear classifier", "linear", 12.0),
    Row("mlp-300", "28x28-300-10", "mlp-300", 4.7),
    Row("mlp-300-distort", "28x28-300-10 [distortions]", "mlp-300", 3.6, distort=True),
    Row("mlp-1000", "28x28-1000-10", "mlp-1000", 4.5),
    Row("mlp-1000-distort", "28x28-1000-10 [distortions]", "mlp-1000", 3.8, distort=True),
    Row("mlp-300-100", "28x28-300-100-10", "mlp-300-100", 3.05),
    Row("mlp-300-100-distort", "28x28-300-100-10 [distortions]", "mlp-300-100", 2.5,
        distort=True),
    Row("mlp-500-150", "28x28-500-150-10", "mlp-500-150", 2.95),
    Row("mlp-500-150-distort", "28x28-500-150-10 [distortions]", "mlp-500-150", 2.45,
        distort=True),
    Row("lenet1", "LeNet-1 [16x16]", "lenet1", 1.7),
    Row("lenet4", "LeNet-4", "lenet4", 1.1),
    Row("lenet5", "LeNet-5", "lenet5-1998", 0.95),
    Row("lenet5-train", "LeNet-5 training error, pass 19", "lenet5-1998", 0.35,
        train_error=True),
    Row("lenet5-distort", "LeNet-5 [distortions]", "lenet5-1998-distort", 0.8, distort=True),
)
_BY_NAME = {r.name: r for r in ROWS}


def select(only: list[str] | None) -> list[Row]:
    if not only:
        return list(ROWS)
    unknown = [n for n in only if n not in _BY_NAME]
    if unknown:
        raise ConfigError(f"unknown paper row(s) {', '.join(unknown)}; rows: "
                          + ", ".join(_BY_NAME))
    return [_BY_NAME[n] for n in only]


def _train_error(run_dir: Path) -> float:
    """The running training error of pass 19 (or of the last pass when fewer were run)."""
    rows = rundir.read_metrics(run_dir)
    return 100.0 * (1.0 - float(rows[min(18, len(rows) - 1)]["train_accuracy"]))


def _error_of(row: Row, run: Any) -> float:
    if row.train_error:
        return _train_error(run.run_dir)
    return 100.0 * (1.0 - run.result["test_accuracy"])


def run(rows: list[Row], *, seeds: int = 1, epochs: int | None = None,
        train_subset: int | None = None, test_subset: int | None = None,
        device: str | None = None, run_dir: str | Path | None = None, jobs: int = 1,
        timeout: float | None = None, log: console.Log | None = None) -> dict[str, Any]:
    """Train every row `seeds` times with `lenet sweep`; return (and write) the comparison table.

    Each distinct recipe (with or without distortions) is one sweep, in ``run_dir/<recipe>/``:
    seeds 0..seeds-1, ``jobs`` runs at a time, each its own ``lenet train`` process, so a failed
    run is reported with its log and the other runs and rows go on.
    """
    from lenet.sweep import run_sweep

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    log = log or console.log
    out = Path(run_dir) if run_dir else rundir.default("paper")
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--no-tensorboard"]
    for flag, value in (("--epochs", epochs), ("--train-subset", train_subset),
                        ("--test-subset", test_subset), ("--device", device)):
        if value is not None:
            extra += [flag, str(value)]
    sweeps: dict[tuple[str, bool], Any] = {}  # lenet5 and lenet5-train share their runs
    table = []
    for row in rows:
        key = (row.recipe, row.distort)
        if key not in sweeps:
            distorted = row.distort and not row.recipe.endswith("distort")
            name = f"{row.recipe}{'-distort' * distorted}"
            sweeps[key] = run_sweep(row.recipe, {}, seeds, jobs, out / name,
                                    extra_args=extra + ["--distort"] * row.distort,
                                    timeout=timeout, log=log)
        table.append(_row_result(row, sweeps[key].runs))
    report = {"seeds": seeds, "epochs": epochs, "train_subset": train_subset,
              "test_subset": test_subset, "rows": table}
    atomic.write_text(out / "paper.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "paper.md", format_markdown(report))
    report["run_dir"] = str(out)
    return report


def _row_result(row: Row, runs: list[Any]) -> dict[str, Any]:
    """One row of the table from its sweep's runs: our errors beside the paper's."""
    from lenet.sweep import mean_std

    ok = [r for r in runs if r.ok]
    errors = [_error_of(row, r) for r in ok]
    mean, std = mean_std(errors)
    return {
        "row": row.name, "method": row.method, "paper_error": row.paper_error,
        "errors": errors, "mean": mean, "std": std,
        "params": ok[0].result["params"] if ok else None,
        "train_seconds": mean_std([r.result["train_seconds"] for r in ok])[0],
        "runs": [str(r.run_dir) for r in runs],
        "failed": [{"seed": r.seed, "log": str(r.log_path), "error": r.error}
                   for r in runs if not r.ok],
    }


def format_markdown(report: dict[str, Any]) -> str:
    lines = ["| method | paper test error % | ours mean ± std | parameters | training time |",
             "|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        if r["mean"] is None:
            lines.append(f"| {r['method']} | {r['paper_error']:g} | every run failed | – | – |")
            continue
        failed = f" ({len(r['failed'])} failed)" if r["failed"] else ""
        spread = f" ± {r['std']:.2f}" if r["std"] is not None else ""
        lines.append(f"| {r['method']} | {r['paper_error']:g} | {r['mean']:.2f}{spread}"
                     f"{failed} | {r['params']:,} | {r['train_seconds']:.0f} s |")
    notes = [f"seeds: {report['seeds']}"]
    if report.get("epochs"):
        notes.append(f"epochs: {report['epochs']}")
    if report.get("train_subset"):
        notes.append(f"training digits: {report['train_subset']}")
    if report.get("test_subset"):
        notes.append(f"test digits: {report['test_subset']}")
    return "\n".join(lines) + "\n\n" + ", ".join(notes) + "\n"
