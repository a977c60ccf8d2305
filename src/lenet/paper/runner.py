"""``lenet paper``: the 1998 paper's MNIST comparison (Fig. 9), with rejection (Fig. 10) and the
cost per digit (Figs. 11-12), every row trained and measured here.

Two kinds of rows share one table:

- the neural rows (:data:`ROWS`): a shipped recipe (plus ``distort``), trained once per seed by
  `lenet sweep` (:func:`lenet.training.sweep.run_sweep`), every run its own ``lenet train`` process;
  the final weights are then read back for the rejection and the time per digit;
- the classical rows (:mod:`lenet.paper.classic`): fitted and scored in this process, once per seed.

Columns: method | paper test error % | ours mean ± std | rejection for 0.5 % error |
MACs per digit | memory (numbers stored) | training time | time per digit. The table (Markdown
and JSON) goes to the run dir, atomically. A row that fails is reported; the others go on.

``jobs`` workers run the rows concurrently. A neural row takes as many workers as it runs seeds
at once (up to ``jobs``), a classical row one; each worker's threads are the machine's cores
divided by ``jobs`` (``OMP_NUM_THREADS`` for a child process, ``torch.set_num_threads`` here).

This module imports no torch: ``lenet --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet import console
from lenet.errors import ConfigError
from lenet.storage import atomic, rundir

MNIST_TRAIN = 60_000  # training digits; a row trained on fewer says so in the table


@dataclass(frozen=True)
class Row:
    name: str  # what --only selects
    method: str  # as the paper's Fig. 9 names it
    recipe: str  # a neural row's shipped recipe; "" for a classical row
    paper_error: float  # percent
    distort: bool = False
    train_error: bool = False  # report the training error after pass 19 instead of test error
    classical: bool = False  # a lenet.paper.classic row, fitted in this process
    default_train_subset: int | None = None  # a classical row's own subset unless told


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

# The order of the paper's Fig. 9; rows not named here (new classical rows) come last.
FIG9_ORDER = (
    "linear", "linear-deslant", "pairwise-deslant", "knn", "knn-deslant", "pca-quadratic",
    "rbf", "tangent-distance", "svm-poly4", "svm-reduced-poly5", "vsvm-poly9",
    "mlp-300", "mlp-300-distort", "mlp-300-deslant", "mlp-1000", "mlp-1000-distort",
    "mlp-300-100", "mlp-300-100-distort", "mlp-500-150", "mlp-500-150-distort",
    "lenet1", "lenet4", "lenet4-local", "lenet4-knn", "lenet5", "lenet5-train",
    "lenet5-distort", "boosted-lenet4",
)


def classical_rows() -> list[Row]:
    """The rows :mod:`lenet.paper.classic` registers (imports torch)."""
    from lenet.paper import classic

    rows = []
    for name in classic.names():
        m = classic.get(name)
        rows.append(Row(name, m.method, "", m.paper_error, classical=True,
                        default_train_subset=m.default_train_subset))
    return rows


def all_rows() -> list[Row]:
    """Every row, neural and classical, in the order of the paper's Fig. 9."""
    rows = [*ROWS, *classical_rows()]
    names = [r.name for r in rows]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise RuntimeError(f"paper rows named twice: {', '.join(doubled)}")
    rank = {n: i for i, n in enumerate(FIG9_ORDER)}
    return sorted(rows, key=lambda r: rank.get(r.name, len(rank)))


def select(only: list[str] | None) -> list[Row]:
    """The rows named by ``--only`` in that order, or every row."""
    rows = all_rows()
    if not only:
        return rows
    by_name = {r.name: r for r in rows}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown paper row(s) {', '.join(unknown)}; rows: "
                          + ", ".join(by_name) + " (lenet paper --list describes them)")
    return [by_name[n] for n in dict.fromkeys(only)]


def format_list(rows: list[Row]) -> str:
    """``lenet paper --list``: every row's name, kind, the paper's error and its method."""
    lines = [f"{'row':<22}{'kind':<11}{'paper %':>8}  method"]
    for r in rows:
        kind = "classical" if r.classical else "neural"
        subset = (f" (default: {r.default_train_subset:,} training digits)"
                  if r.default_train_subset else "")
        lines.append(f"{r.name:<22}{kind:<11}{r.paper_error:>8g}  {r.method}{subset}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- one seed of a row
@dataclass
class _Seed:
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


@dataclass
class _Plan:
    """The settings every task reads."""

    out: Path
    seeds: int
    jobs: int
    epochs: int | None
    train_subset: int | None
    test_subset: int | None
    device: str | None
    timeout: float | None
    target: float  # the error (percent) the rejection is computed for
    log: console.Log
    threads: int = 0  # per worker when rows run concurrently; 0: leave torch's own
    stop: threading.Event = field(default_factory=threading.Event)

    def checked_log(self, message: str) -> None:
        """Progress from a worker; after Ctrl-C it stops that worker at its next line."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.log(message)


@dataclass
class _Task:
    label: str
    rows: list[str]
    seeds: list[int]
    slots: int  # workers it occupies: a sweep runs up to `jobs` seeds at once
    outputs: list[Path]  # must not exist yet
    fn: Callable[[], dict[str, list[_Seed]]]

    def __call__(self, plan: _Plan) -> dict[str, list[_Seed]]:
        """The task's seeds; if it fails as a whole, each of them failed, and the rest go on."""
        try:
            return self.fn()
        except Exception as e:
            why = _why(e)
            plan.log(f"{self.label}: FAILED\n    {why}")
            where = str(self.outputs[0]) if self.outputs else ""
            return {name: [_Seed(seed, where, "", failure=why) for seed in self.seeds]
                    for name in self.rows}


def _why(e: BaseException) -> str:
    return str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------- neural rows
def _train_error(run_dir: Path) -> float:
    """The running training error of pass 19 (or of the last pass when fewer were run)."""
    rows = rundir.read_metrics(run_dir, required=("epoch", "train_accuracy"))
    return 100.0 * (1.0 - float(rows[min(18, len(rows) - 1)]["train_accuracy"]))


def _error_of(row: Row, run: Any) -> float:
    if row.train_error:
        return _train_error(run.run_dir)
    return 100.0 * (1.0 - run.result["test_accuracy"])


def _sweep_args(plan: _Plan, row: Row) -> tuple[str, list[str]]:
    """The sweep's folder name and the `lenet train` arguments every run of it gets."""
    extra = ["--no-tensorboard"]
    for flag, value in (("--epochs", plan.epochs), ("--train-subset", plan.train_subset),
                        ("--test-subset", plan.test_subset), ("--device", plan.device)):
        if value is not None:
            extra += [flag, str(value)]
    distorted = row.distort and not row.recipe.endswith("distort")
    return f"{row.recipe}{'-distort' * distorted}", extra + ["--distort"] * row.distort


def _net_figures(plan: _Plan, run: Any) -> dict[str, Any]:
    """Rejection, time per digit, MACs and parameters of one run's final weights."""
    from lenet.analysis.evaluate import load, paper_figures
    from lenet.analysis.summary import total_connections
    from lenet.models import count_parameters, get_spec

    loaded = load(run.run_dir, plan.device or "cpu")
    figures = paper_figures(loaded, plan.target)
    model = loaded.model.cpu()
    figures["macs"] = total_connections(model, get_spec(loaded.meta.model).input_size)
    figures["memory"] = count_parameters(model)
    subset = rundir.read_config(run.run_dir).get("train_subset")
    figures["train_digits"] = int(subset) if subset else MNIST_TRAIN
    return figures


def _neural_seed(plan: _Plan, row: Row, run: Any, figures: dict[str, Any] | str) -> _Seed:
    s = _Seed(run.seed, str(run.run_dir), str(run.log_path))
    if isinstance(figures, str):
        s.failure = figures
        return s
    s.error = _error_of(row, run)
    s.rejection = None if row.train_error else figures["rejection"]
    s.train_seconds = run.result["train_seconds"]
    for key in ("seconds_per_digit", "macs", "memory", "train_digits"):
        setattr(s, key, figures[key])
    return s


def _neural_task(plan: _Plan, rows: list[Row]) -> _Task:
    """One sweep (a recipe, with or without distortions) for the rows that share it."""
    from lenet.training.sweep import plan as plan_sweep
    from lenet.training.sweep import run_sweep

    name, extra = _sweep_args(plan, rows[0])
    out = plan.out / name
    runs = [r.run_dir for p in plan_sweep(rows[0].recipe, {}, plan.seeds, out, extra)
            for r in p.runs]

    def fn() -> dict[str, list[_Seed]]:
        sweep = run_sweep(rows[0].recipe, {}, plan.seeds, plan.jobs, out, extra_args=extra,
                          timeout=plan.timeout, log=plan.checked_log)
        results: dict[str, list[_Seed]] = {r.name: [] for r in rows}
        for run in sweep.runs:
            figures: dict[str, Any] | str = run.error or "no result"
            if run.ok:
                try:
                    figures = _net_figures(plan, run)
                except Exception as e:  # a run that trained but cannot be read back
                    figures = f"measuring its weights failed: {_why(e)}"
            for row in rows:
                results[row.name].append(_neural_seed(plan, row, run, figures))
        return results

    return _Task(name, [r.name for r in rows], list(range(plan.seeds)),
                 min(plan.seeds, plan.jobs), runs, fn)


# --------------------------------------------------------------------------- classical rows
def _row_log(plan: _Plan, label: str, path: Path) -> console.Log:
    def log(message: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(message + "\n")
        plan.checked_log(f"[{label}] {message}")
    return log


def _classical_seed(plan: _Plan, row: Row, seed: int, folder: Path) -> _Seed:
    from lenet.analysis.evaluate import rejection_at
    from lenet.paper import classic
    from lenet.runtime.device import pick

    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "row.log"
    s = _Seed(seed, str(folder), str(log_path))
    ctx = classic.Context(out=folder, seed=seed, train_subset=plan.train_subset,
                          test_subset=plan.test_subset, epochs=plan.epochs,
                          device=pick(plan.device or "cpu").type,
                          shared=plan.out / "classic" / "shared",
                          log=_row_log(plan, f"{row.name} seed {seed}", log_path))
    try:
        o = classic.run(row.name, ctx)
        s.rejection = rejection_at(o.scores, o.labels, plan.target)
        s.error = o.error
    except Exception as e:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(traceback.format_exc())
        s.failure = _why(e)
        return s
    s.train_seconds, s.seconds_per_digit = o.train_seconds, o.test_seconds / len(o.labels)
    s.macs, s.memory, s.train_digits, s.notes = o.macs, o.memory, o.train_digits, o.notes
    return s


def _classical_task(plan: _Plan, row: Row, seed: int) -> _Task:
    folder = plan.out / "classic" / row.name / f"seed{seed}"

    def fn() -> dict[str, list[_Seed]]:
        s = _classical_seed(plan, row, seed, folder)
        how = (f"error {s.error:.2f} % ({s.train_seconds:.1f}s training)" if s.failure is None
               else f"FAILED, log {s.log}\n    {s.failure}")
        plan.checked_log(f"{row.name} seed {seed}: {how}")
        return {row.name: [s]}

    return _Task(f"{row.name} seed {seed}", [row.name], [seed], 1, [folder], fn)


# --------------------------------------------------------------------------- scheduling
class _Slots:
    """`jobs` workers' worth of room; a task holds as many as it runs processes at once."""

    def __init__(self, n: int, threads: int) -> None:
        self.free = n
        self.threads = threads
        self.cond = threading.Condition()

    def run(self, task: _Task, plan: _Plan) -> dict[str, list[_Seed]]:
        with self.cond:
            self.cond.wait_for(lambda: self.free >= task.slots)
            self.free -= task.slots
        try:
            with _thread_limit(self.threads):
                return task(plan)
        finally:
            with self.cond:
                self.free += task.slots
                self.cond.notify_all()


@contextlib.contextmanager
def _thread_limit(threads: int) -> Iterator[None]:
    """This worker's share of the cores for torch and for scikit-learn's native pools."""
    if threads <= 0:
        yield
        return
    import torch

    torch.set_num_threads(threads)
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        yield


def _merge(into: dict[str, list[_Seed]], results: dict[str, list[_Seed]]) -> None:
    for name, seeds in results.items():
        into.setdefault(name, []).extend(seeds)


def _execute(tasks: list[_Task], plan: _Plan) -> dict[str, list[_Seed]]:
    """Every task, one after another (``jobs`` 1) or on ``jobs`` workers."""
    results: dict[str, list[_Seed]] = {}
    if plan.jobs == 1:
        for task in tasks:
            _merge(results, task(plan))
        return results
    slots = _Slots(plan.jobs, plan.threads)
    pool = ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="lenet-paper")
    try:
        for future in as_completed([pool.submit(slots.run, t, plan) for t in tasks]):
            _merge(results, future.result())
    except BaseException:  # Ctrl-C: start nothing more; the running rows stop at their next line
        plan.stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        plan.log("interrupted: no more rows start; the running ones stop at their next step")
        raise
    pool.shutdown(wait=True)
    return results


def _tasks(rows: list[Row], plan: _Plan) -> list[_Task]:
    tasks: list[_Task] = []
    sweeps: dict[tuple[str, bool], list[Row]] = {}  # lenet5 and lenet5-train share their runs
    for row in rows:
        if row.classical:
            tasks += [_classical_task(plan, row, seed) for seed in range(plan.seeds)]
        elif (row.recipe, row.distort) in sweeps:
            sweeps[(row.recipe, row.distort)].append(row)
        else:
            sweeps[(row.recipe, row.distort)] = [row]
            tasks.append(_neural_task(plan, sweeps[(row.recipe, row.distort)]))
    taken = [p for t in tasks for p in t.outputs if p.exists()]
    if taken:
        raise ConfigError(f"{taken[0]} already exists ({len(taken)} of the rows' folders do); "
                          "choose another --run-dir or delete them")
    return tasks


# --------------------------------------------------------------------------- the table
def run(rows: list[Row], *, seeds: int = 1, epochs: int | None = None,
        train_subset: int | None = None, test_subset: int | None = None,
        device: str | None = None, run_dir: str | Path | None = None, jobs: int = 1,
        timeout: float | None = None, reject: float | None = None,
        log: console.Log | None = None) -> dict[str, Any]:
    """Run every row `seeds` times, `jobs` workers at a time; return (and write) the table.

    A neural row's runs go to ``run_dir/<recipe>/`` (one `lenet sweep`), a classical row's to
    ``run_dir/classic/<row>/seed<S>/``; a failed run is reported with its log and the other
    runs and rows go on. `reject`: the error (percent, default 0.5) the rejection is for.
    """
    from lenet.analysis.evaluate import REJECT_TARGET
    from lenet.runtime.device import pick, threads_per_job

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and not (0 < timeout < math.inf):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    if reject is not None and not 0 <= reject < 100:
        raise ConfigError(f"--reject must be an error percentage in [0, 100), got {reject:g}")
    if device is not None:
        pick(device)  # a device this machine lacks fails here, not in every row
    out = Path(run_dir).absolute() if run_dir else rundir.default("paper").absolute()
    plan = _Plan(out, seeds, jobs, epochs, train_subset, test_subset, device, timeout,
                 REJECT_TARGET if reject is None else reject, log or console.log,
                 threads=threads_per_job(jobs) if jobs > 1 else 0)
    tasks = _tasks(rows, plan)
    out.mkdir(parents=True, exist_ok=True)
    with _torch_threads_kept():
        results = _execute(tasks, plan)
    table = [_row_result(row, sorted(results.get(row.name, []), key=lambda s: s.seed))
             for row in rows]
    report = {"seeds": seeds, "epochs": epochs, "train_subset": train_subset,
              "test_subset": test_subset, "jobs": jobs,
              "threads_per_job": plan.threads or threads_per_job(1),
              "reject_target": plan.target, "device": device, "rows": table}
    atomic.write_text(out / "paper.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "paper.md", format_markdown(report))
    report["run_dir"] = str(out)
    return report


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """The workers lower torch's thread count; give this process its own back afterwards."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _mean(values: list[float | None]) -> float | None:
    from lenet.training.sweep import mean_std

    return mean_std([v for v in values if v is not None])[0]


def _row_result(row: Row, seeds: list[_Seed]) -> dict[str, Any]:
    """One row of the table from its seeds: our figures beside the paper's."""
    from lenet.training.sweep import mean_std

    ok = [s for s in seeds if s.failure is None]
    errors = [s.error for s in ok if s.error is not None]
    mean, std = mean_std(errors)
    first = ok[0] if ok else _Seed(-1, "", "")
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
