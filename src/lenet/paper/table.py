"""The table of ``lenet paper``: one row's figures from its seeds (:func:`row_result`), and the
Markdown beside the paper's Fig. 9 (:func:`format_markdown`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lenet.paper.rows import Row
from lenet.training.sweep import mean_std

MNIST_TRAIN = 60_000  # training digits; a row trained on fewer says so in the table


@dataclass
class Seed:
    """One seed of one row: its figures, or why it failed."""

    seed: int
    where: str  # the run dir (neural) or the row's folder (classical)
    log: str
    error: float | None = None  # percent
    rejection: float | None = None  # percent rejected for the target error; None: unreachable
    train_seconds: float | None = None
    seconds_per_digit: float | None = None
    macs: int | None = None
    memory: int | None = None
    train_digits: int | None = None
    notes: str = ""
    failure: str | None = None


def _mean(values: list[float | None]) -> float | None:
    return mean_std([v for v in values if v is not None])[0]


def row_result(row: Row, seeds: list[Seed]) -> dict[str, Any]:
    """One row of the table from its seeds: our figures beside the paper's."""
    ok = [s for s in seeds if s.failure is None]
    errors = [s.error for s in ok if s.error is not None]
    mean, std = mean_std(errors)
    first = ok[0] if ok else Seed(-1, "", "")
    rejections = [] if row.train_error else [s.rejection for s in ok]
    train_digits = first.train_digits
    return {
        "row": row.name, "kind": "classical" if row.classical else "neural",
        "method": row.method, "paper_error": row.paper_error,
        "errors": errors, "mean": mean, "std": std,
        "rejections": rejections, "rejection": _mean(list(rejections)),
        "macs": first.macs, "memory": first.memory,
        "params": None if row.classical else first.memory,
        "train_seconds": _mean([s.train_seconds for s in ok]),
        "seconds_per_digit": _mean([s.seconds_per_digit for s in ok]),
        "train_digits": train_digits,
        "subset": train_digits is not None and train_digits < MNIST_TRAIN,
        "notes": first.notes,
        "runs": [s.where for s in seeds],
        "failed": [{"seed": s.seed, "log": s.log, "error": s.failure}
                   for s in seeds if s.failure is not None],
    }


# --------------------------------------------------------------------------- Markdown
HEADER = ("| method | paper test error % | ours mean ± std | rejection for {target:g} % error "
          "| MACs per digit | memory (numbers stored) | training time | time per digit |")


def _count(n: int | None) -> str:
    if n is None:
        return "–"
    if n < 10_000:
        return f"{n:,}"
    return f"{n / 1e3:,.0f} k" if n < 1_000_000 else f"{n / 1e6:,.1f} M"


def _duration(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1:
        return f"{s * 1e3:.0f} ms"
    if s < 120:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _per_digit(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _rejection(r: dict[str, Any]) -> str:
    values = r.get("rejections") or []
    if not values:
        return "–"
    unreachable = sum(v is None for v in values)
    if unreachable == len(values):
        return "unreachable"
    more = f" ({unreachable} of {len(values)} unreachable)" if unreachable else ""
    return f"{r['rejection']:.2f} %{more}"


def _method(r: dict[str, Any]) -> str:
    if r.get("subset") and r.get("train_digits"):
        return f"{r['method']} ({r['train_digits']:,} training digits)"
    return r["method"]


def _line(r: dict[str, Any]) -> str:
    if r["mean"] is None:
        return f"| {r['method']} | {r['paper_error']:g} | every run failed |" + " – |" * 5
    failed = f" ({len(r['failed'])} failed)" if r["failed"] else ""
    spread = f" ± {r['std']:.2f}" if r["std"] is not None else ""
    return (f"| {_method(r)} | {r['paper_error']:g} | {r['mean']:.2f}{spread}{failed} "
            f"| {_rejection(r)} | {_count(r.get('macs'))} | {_count(r.get('memory'))} "
            f"| {_duration(r.get('train_seconds'))} "
            f"| {_per_digit(r.get('seconds_per_digit'))} |")


def format_markdown(report: dict[str, Any]) -> str:
    target = report.get("reject_target", 0.5)
    lines = [HEADER.format(target=target), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_line(r) for r in report["rows"]]
    notes = [f"seeds: {report['seeds']}"]
    if report.get("epochs"):
        notes.append(f"epochs: {report['epochs']}")
    if report.get("train_subset"):
        notes.append(f"training digits: {report['train_subset']}")
    if report.get("test_subset"):
        notes.append(f"test digits: {report['test_subset']}")
    if report.get("jobs", 1) > 1:
        threads = report["threads_per_job"]
        notes.append(f"{report['jobs']} rows at a time, {threads} thread{'s' * (threads != 1)} "
                     "each")
    text = "\n".join(lines) + "\n\n" + ", ".join(notes) + "\n"
    text += ("\nRejection: the least confident test digits (smallest margin between the two "
             f"best scores) set aside so that the error on the rest is {target:g} %. "
             "MACs: multiply-accumulates (connections) to recognise one digit. "
             "Time per digit: measured, a batched pass over the test digits.\n")
    footnotes = [f"- {r['method']}: {r['notes']}" for r in report["rows"] if r.get("notes")]
    return text + ("\n" + "\n".join(footnotes) + "\n" if footnotes else "")
