"""``lenet paper``: the 1998 paper's MNIST comparison (Fig. 9), with rejection (Fig. 10) and the
cost per digit (Figs. 11-12), every row trained and measured here.

Two kinds of rows share one table:

- the neural rows (:data:`~lenet.paper.rows.ROWS`): a shipped recipe (plus ``distort``), trained
  once per seed by a sweep (:func:`lenet.training.sweep.run_sweep`), which hands each run's
  TrainConfig to a worker process of its own; the final weights are then read back for the
  rejection and the time per digit;
- the classical rows (:mod:`lenet.paper.classic`): fitted and scored in this process, once per seed.

Columns (:mod:`lenet.paper.table`): method | paper test error % | ours mean ± std | rejection for
0.5 % error | MACs per digit | memory (numbers stored) | training time | time per digit. The
table (Markdown and JSON) goes to the run dir, atomically. A row that fails is reported; the
others go on.

``jobs`` workers run the rows concurrently. A neural row takes as many workers as it runs seeds
at once (up to ``jobs``), a classical row one; each worker's threads are the machine's cores
divided by ``jobs`` (``OMP_NUM_THREADS`` for a child process, :func:`lenet.runtime.threads.threads`
here). SIGTERM (or SIGHUP) kills every training run before the process ends.
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
from lenet.analysis.evaluate import REJECT_TARGET, load, paper_figures, rejection_at
from lenet.analysis.summary import total_connections
from lenet.errors import ConfigError
from lenet.models import count_parameters, get_spec
from lenet.paper import classic
from lenet.paper.rows import FIG9_ORDER, ROWS, Row, format_list
from lenet.paper.table import MNIST_TRAIN, Seed, format_markdown, row_result
from lenet.runtime.device import pick
from lenet.runtime.jobs import stopped_by_signals
from lenet.runtime.threads import threads, threads_per_job
from lenet.storage import atomic, rundir
from lenet.training.sweep import Run, run_sweep
from lenet.training.sweep import plan as plan_sweep

# The paper's API, from its entry module (rows and the table live beside it).
__all__ = ["ROWS", "Row", "all_rows", "classical_rows", "format_list", "format_markdown", "run",
           "select"]


def classical_rows() -> list[Row]:
    """The rows :mod:`lenet.paper.classic` registers."""
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


# --------------------------------------------------------------------------- one seed of a row
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
    fn: Callable[[], dict[str, list[Seed]]]

    def __call__(self, plan: _Plan) -> dict[str, list[Seed]]:
        """The task's seeds; if it fails as a whole, each of them failed, and the rest go on."""
        try:
            return self.fn()
        except Exception as e:
            why = _why(e)
            plan.log(f"{self.label}: FAILED\n    {why}")
            where = str(self.outputs[0]) if self.outputs else ""
            return {name: [Seed(seed, where, "", failure=why) for seed in self.seeds]
                    for name in self.rows}


def _why(e: BaseException) -> str:
    return str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------- neural rows
def _train_error(run_dir: Path) -> float:
    """The running training error of pass 19 (or of the last pass when fewer were run)."""
    rows = rundir.read_metrics(run_dir, required=("epoch", "train_accuracy"))
    return 100.0 * (1.0 - float(rows[min(18, len(rows) - 1)]["train_accuracy"]))


def _error_of(row: Row, run: Run) -> float:
    if row.train_error:
        return _train_error(run.run_dir)
    assert run.result is not None  # only a run that succeeded is measured
    return 100.0 * (1.0 - run.result["test_accuracy"])


def _sweep_config(plan: _Plan, row: Row) -> tuple[str, dict[str, Any]]:
    """The sweep's folder name and the config keys every run of it gets."""
    overrides = {"tensorboard": False, "epochs": plan.epochs, "train_subset": plan.train_subset,
                 "test_subset": plan.test_subset, "device": plan.device,
                 "distort": True if row.distort else None}
    distorted = row.distort and not row.recipe.endswith("distort")
    return f"{row.recipe}{'-distort' * distorted}", overrides


def _net_figures(plan: _Plan, run: Run) -> dict[str, Any]:
    """Rejection, time per digit, MACs and parameters of one run's final weights."""
    loaded = load(run.run_dir, plan.device or "cpu")
    figures = paper_figures(loaded, plan.target)
    model = loaded.model.cpu()
    figures["macs"] = total_connections(model, get_spec(loaded.meta.model).input_size)
    figures["memory"] = count_parameters(model)
    subset = rundir.read_config(run.run_dir).get("train_subset")
    figures["train_digits"] = int(subset) if subset else MNIST_TRAIN
    return figures


def _neural_seed(plan: _Plan, row: Row, run: Run, figures: dict[str, Any] | str) -> Seed:
    s = Seed(run.seed, str(run.run_dir), str(run.log_path))
    if isinstance(figures, str):
        s.failure = figures
        return s
    assert run.result is not None  # figures are measured only for a run that succeeded
    s.error = _error_of(row, run)
    s.rejection = None if row.train_error else figures["rejection"]
    s.train_seconds = run.result["train_seconds"]
    for key in ("seconds_per_digit", "macs", "memory", "train_digits"):
        setattr(s, key, figures[key])
    return s


def _neural_task(plan: _Plan, rows: list[Row]) -> _Task:
    """One sweep (a recipe, with or without distortions) for the rows that share it."""
    name, overrides = _sweep_config(plan, rows[0])
    out = plan.out / name
    runs = [r.run_dir for p in plan_sweep(rows[0].recipe, {}, plan.seeds, out,
                                          overrides=overrides) for r in p.runs]

    def fn() -> dict[str, list[Seed]]:
        sweep = run_sweep(rows[0].recipe, {}, plan.seeds, plan.jobs, out, timeout=plan.timeout,
                          log=plan.checked_log, overrides=overrides)
        results: dict[str, list[Seed]] = {r.name: [] for r in rows}
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


def _classical_seed(plan: _Plan, row: Row, seed: int, folder: Path) -> Seed:
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "row.log"
    s = Seed(seed, str(folder), str(log_path))
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

    def fn() -> dict[str, list[Seed]]:
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

    def run(self, task: _Task, plan: _Plan) -> dict[str, list[Seed]]:
        with self.cond:
            self.cond.wait_for(lambda: self.free >= task.slots)
            self.free -= task.slots
        try:
            with _native_pools(self.threads):
                return task(plan)
        finally:
            with self.cond:
                self.free += task.slots
                self.cond.notify_all()


@contextlib.contextmanager
def _native_pools(threads: int) -> Iterator[None]:
    """This worker's share of the cores for scikit-learn's native pools (OpenMP, BLAS), which
    torch's count does not cover; 0: as they are. Set from the worker's own thread: an OpenMP
    thread count belongs to the thread that sets it."""
    if threads <= 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415  (extra: scikit-learn)
    except ImportError:  # no scikit-learn: no pools of its own to limit
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def _merge(into: dict[str, list[Seed]], results: dict[str, list[Seed]]) -> None:
    for name, seeds in results.items():
        into.setdefault(name, []).extend(seeds)


def _execute(tasks: list[_Task], plan: _Plan) -> dict[str, list[Seed]]:
    """Every task, one after another (``jobs`` 1) or on ``jobs`` workers."""
    results: dict[str, list[Seed]] = {}
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
    # Each worker's share of the cores (torch's count, which threads started later take up);
    # this process's own count is back afterwards. SIGTERM takes every training run with it.
    with stopped_by_signals(), threads(plan.threads):
        results = _execute(tasks, plan)
    table = [row_result(row, sorted(results.get(row.name, []), key=lambda s: s.seed))
             for row in rows]
    report = {"seeds": seeds, "epochs": epochs, "train_subset": train_subset,
              "test_subset": test_subset, "jobs": jobs,
              "threads_per_job": plan.threads or threads_per_job(1),
              "reject_target": plan.target, "device": device, "rows": table}
    atomic.write_text(out / "paper.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "paper.md", format_markdown(report))
    report["run_dir"] = str(out)
    return report

