"""`lenet sweep`: a grid of independent `lenet train` runs, mean ± std of test accuracy per point.

    lenet sweep --config lenet5-fast --seeds 3 --set lr=0.001,0.003 --set batch_size=32,64 -j 2

The grid is the cartesian product of every ``--set KEY=V1,V2,...`` times seeds ``0..K-1``. Each
run is one :class:`~lenet.config.TrainConfig`, written into its run dir (``job.json``) and trained
there by a process of its own (:mod:`lenet.training.worker`, child jobs through
:mod:`lenet.runtime.jobs`), which leaves its figures in ``result.json``: a crash, a NaN or a
timeout stays inside that run, the others go on, and the sweep exits 1 at the end if any run
failed. Runs are executed by a pool of ``--jobs`` workers; each process gets ``cpu_count // jobs``
threads (through ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``) so that the workers do not fight over
the cores. SIGTERM (or SIGHUP) kills every run before the sweep ends.

What a sweep leaves in its folder (``--run-dir``):

- ``<point>-seed<S>/``: the run directory of each run (:mod:`lenet.storage.rundir`), with its
  ``job.json``, its log ``train.log`` (the run's output) and its ``result.json`` next to the
  usual ``config.json``, ``metrics.csv`` and weights;
- ``summary.md`` and ``summary.json``: the table (and every run's figures), written atomically.

Values are split on commas. For list-valued keys (``milestones``, ``lr_values``) the items of one
list are separated by ``;`` or ``:`` instead: ``--set milestones=3:6,5:8`` (or, quoted for the
shell, ``'milestones=3;6,5;8'``) sweeps ``[3, 6]`` and ``[5, 8]``. A value that itself contains a
comma (say a ``data_dir``) cannot be swept.

Every grid point is validated with :func:`lenet.config.resolve` before any run starts, so a
misspelt key or a bad value fails at once with a :class:`~lenet.errors.ConfigError`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet import console
from lenet.config import LIST_KEYS, TrainConfig, resolve
from lenet.errors import ConfigError, LenetError
from lenet.runtime.jobs import Group, Stopped, stopped_by_signals, thread_env
from lenet.runtime.threads import threads_per_job
from lenet.storage import atomic, rundir
from lenet.training import worker

TAIL_LINES = 20
# Train arguments the sweep sets itself, per run.
_RESERVED_KEYS = ("seed", "run_dir")


# --------------------------------------------------------------------------- results
def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; the std of fewer than two values is None (there is
    no spread to report), the mean of none is None."""
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Run:
    """One training run of the sweep: its config, trained by a worker process of its own."""

    point: str  # the grid point's name, e.g. "lr=0.01"
    params: dict[str, str]  # the grid values of this point, as given
    seed: int
    run_dir: Path
    log_path: Path
    command: list[str]  # the `lenet train` command line that trains this run by hand
    config: TrainConfig  # what the worker trains (its job.json)
    returncode: int | None = None  # None: it did not finish (timed out or never started)
    wall_seconds: float = 0.0
    result: dict[str, Any] | None = None  # its result.json: the figures of `lenet train --json`
    error: str | None = None  # why it failed, and the tail of its log

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    @property
    def test_accuracy(self) -> float | None:
        return self.result["test_accuracy"] if self.result else None

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "params": self.params, "seed": self.seed,
                "ok": self.ok, "returncode": self.returncode,
                "wall_seconds": round(self.wall_seconds, 3), "run_dir": str(self.run_dir),
                "log": str(self.log_path), "command": self.command, "result": self.result,
                "error": self.error}


@dataclass
class Point:
    """One grid point: its runs (one per seed) and their test accuracy statistics."""

    name: str
    params: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def accuracies(self) -> list[float]:
        return [r.test_accuracy for r in self.ok_runs if r.test_accuracy is not None]

    @property
    def mean(self) -> float | None:
        return mean_std(self.accuracies)[0]

    @property
    def std(self) -> float | None:
        """Sample standard deviation; None with fewer than two successful runs."""
        return mean_std(self.accuracies)[1]

    @property
    def min(self) -> float | None:
        return min(self.accuracies, default=None)

    @property
    def max(self) -> float | None:
        return max(self.accuracies, default=None)

    @property
    def seconds_per_epoch(self) -> float | None:
        spe = [r.result["seconds_per_epoch"] for r in self.ok_runs if r.result]
        return statistics.mean(spe) if spe else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "runs_total": len(self.runs),
                "runs_ok": len(self.ok_runs), "test_accuracy_mean": self.mean,
                "test_accuracy_std": self.std, "test_accuracy_min": self.min,
                "test_accuracy_max": self.max, "seconds_per_epoch": self.seconds_per_epoch,
                "runs": [r.to_dict() for r in self.runs]}


@dataclass
class SweepResult:
    recipe: str
    grid: dict[str, list[str]]
    seeds: int
    jobs: int
    out_dir: Path
    points: list[Point]
    seconds: float = 0.0

    @property
    def runs(self) -> list[Run]:
        return [r for p in self.points for r in p.runs]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "grid": self.grid, "seeds": self.seeds,
                "jobs": self.jobs, "out_dir": str(self.out_dir),
                "seconds": round(self.seconds, 3), "runs_total": len(self.runs),
                "runs_failed": len(self.failed), "points": [p.to_dict() for p in self.points]}

    def table(self) -> str:
        """The Markdown table: one row per grid point."""
        lines = ["| point | test accuracy % (mean ± std) | min | max | runs ok | s/epoch |",
                 "|---|---|---:|---:|---:|---:|"]
        for p in self.points:
            lines.append(f"| {p.name} | {_pct(p.mean)} ± {_pct(p.std)} | {_pct(p.min)} "
                         f"| {_pct(p.max)} | {len(p.ok_runs)}/{len(p.runs)} "
                         f"| {_num(p.seconds_per_epoch)} |")
        return "\n".join(lines)

    def failures(self) -> str:
        """Each failed run: its command, why it failed and the tail of its log."""
        blocks = []
        for r in self.failed:
            blocks.append(f"### {r.point} seed {r.seed}\n\nlog: `{r.log_path}`\n\n"
                          f"```\n{r.error}\n```")
        return "\n\n".join(blocks)

    def markdown(self) -> str:
        grid = ", ".join(f"{k} ∈ {{{', '.join(v)}}}" for k, v in self.grid.items()) or "none"
        text = (f"# lenet sweep: {self.recipe}\n\n"
                f"grid: {grid}; seeds 0..{self.seeds - 1}; {len(self.runs)} runs, "
                f"{len(self.failed)} failed; {self.jobs} jobs, {self.seconds:.1f}s\n\n"
                f"{self.table()}\n")
        if self.failed:
            text += f"\n## Failed runs\n\n{self.failures()}\n"
        return text


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


# --------------------------------------------------------------------------- the grid
def parse_grid(sets: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=0.01,0.02", "batch_size=64"]`` -> ``{"lr": ["0.01", "0.02"], "batch_size": ["64"]}``.
    """
    grid: dict[str, list[str]] = {}
    for item in sets:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE[,VALUE...]")
        if key in grid:
            raise ConfigError(f"--set {key} is given twice; list all its values in one --set "
                              f"({key}=A,B,...)")
        items = [v.strip() for v in values.split(",")]
        if any(v == "" for v in items):
            raise ConfigError(f"--set {item!r}: empty value in the list")
        grid[key] = items
    return grid


def _train_value(key: str, value: str) -> str:
    """A grid value as `lenet train --set` takes it (lists there are comma-separated)."""
    return value.replace(";", ",").replace(":", ",") if key in LIST_KEYS else value


def _as_text(value: Any) -> str:
    """A grid value from Python: lists (for milestones, lr_values) become ``3,6``."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _point_name(params: dict[str, str], axes: Sequence[str]) -> str:
    """``lr=0.01,batch_size=64`` from the keys that vary; keys with one value are not named."""
    if not axes:
        return "base"
    name = ",".join(f"{k}={params[k]}" for k in axes)
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)[:120]


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}~{seen[n]}")
    return out


def _base_overrides(grid: Mapping[str, list[str]], given: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """The config keys every run gets (`given`). The sweep sets each run's seed and run dir
    itself: nobody else may."""
    for key in grid:
        if key in _RESERVED_KEYS:
            flag = "--seeds" if key == "seed" else "--run-dir"
            raise ConfigError(f"--set {key}: the sweep sets {key} itself (use {flag})")
        if not grid[key]:
            raise ConfigError(f"--set {key}: no values")
    for key in _RESERVED_KEYS:
        if given.get(key) is not None:
            raise ConfigError(f"overrides set {key}: the sweep sets it itself")
    return dict(given)


def _as_sets(values: Mapping[str, Any]) -> list[str]:
    """`values` as `lenet train --set KEY=VALUE` arguments."""
    return [a for k, v in values.items() for a in ("--set", f"{k}={_train_value(k, _as_text(v))}")]


def plan(recipe: str, grid: dict[str, list[str]], seeds: int, out_dir: Path,
         overrides: Mapping[str, Any] | None = None) -> list[Point]:
    """Every point and run of the sweep, each a validated TrainConfig; nothing is run or written.

    `overrides` (config keys, ``{"epochs": 1}``) apply to every run; the grid's values win.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = _base_overrides(grid, given)
    out_dir = Path(out_dir).absolute()
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    axes = [k for k, values in grid.items() if len(values) > 1]
    names = _unique_names([_point_name(c, axes) for c in combos])
    return [_point(recipe, name, params, seeds, out_dir, base,
                   ["--config", recipe, *_as_sets(given), *_as_sets(params)])
            for name, params in zip(names, combos, strict=True)]


def _point(recipe: str, name: str, params: dict[str, str], seeds: int, out_dir: Path,
           base: Mapping[str, Any], train_args: list[str]) -> Point:
    """One grid point's runs, one per seed, each a resolved config."""
    values = {**base, **{k: _train_value(k, v) for k, v in params.items()}}
    point = Point(name, params)
    for seed in range(seeds):
        run_dir = out_dir / f"{name}-seed{seed}"
        try:
            config = resolve(recipe, {**values, "seed": seed, "run_dir": str(run_dir)})
        except ConfigError as e:
            where = f"grid point {name}: " if params else ""
            raise ConfigError(f"{where}{e}") from None
        command = [sys.executable, "-m", "lenet", "train", *train_args,
                   "--seed", str(seed), "--run-dir", str(run_dir), "--json"]
        point.runs.append(Run(name, params, seed, run_dir, run_dir / rundir.LOG, command, config))
    return point


# --------------------------------------------------------------------------- running
def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(the log is empty)"


class _Runner:
    """Runs each run's worker in a group of jobs, so that an interrupt can stop them all."""

    def __init__(self, env: dict[str, str], timeout: float | None) -> None:
        self.env = env
        self.timeout = timeout
        self.group = Group()

    def run(self, r: Run) -> Run:
        try:
            return self._run(r)
        except Stopped:
            r.error = "not started: the sweep was interrupted"
        except OSError as e:  # cannot create the run dir or start the process
            r.error = f"could not run {r.command[0]}: {e}"
        return r

    def _run(self, r: Run) -> Run:
        if self.group.stopped:
            raise Stopped
        try:
            # Exclusively: a folder that appeared since the sweep checked belongs to someone
            # else (another sweep into the same --run-dir), and the run would refuse it.
            r.run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            r.error = f"not started: {r.run_dir} appeared meanwhile (another sweep there?)"
            return r
        rundir.write_job(r.run_dir, r.config.to_dict())
        done = self.group.run(worker.command(r.run_dir), env=self.env, timeout=self.timeout,
                              log=r.log_path)
        r.wall_seconds = done.seconds
        if done.timed_out:
            r.error = f"timed out after {self.timeout:g}s (killed)\n{_tail(r.log_path)}"
            return r
        r.returncode = done.returncode
        if done.returncode != 0:
            r.error = f"exit status {done.returncode}\n{_tail(r.log_path)}"
            return r
        try:
            result = rundir.read_result(r.run_dir)
            if result is None or "test_accuracy" not in result:
                raise LenetError(f"no test_accuracy in {rundir.RESULT}")
        except LenetError as e:
            r.error = f"exit status 0 but it left no result ({e})\n{_tail(r.log_path)}"
            return r
        r.result = result
        return r


def _describe(r: Run, done: int, total: int) -> str:
    head = f"[{done}/{total}] {r.point} seed {r.seed}:"
    if r.ok:
        return f"{head} test accuracy {r.test_accuracy:.4f} ({r.wall_seconds:.1f}s)"
    tail = "\n".join("    " + line for line in (r.error or "").splitlines())
    return f"{head} FAILED, log {r.log_path}\n{tail}"


def run_sweep(recipe: str, grid: dict[str, list[str]], seeds: int, jobs: int, out_dir: Path,
              timeout: float | None = None, log: console.Log | None = None,
              overrides: Mapping[str, Any] | None = None) -> SweepResult:
    """Run every point of ``grid`` (key -> values, as strings) with seeds ``0..seeds-1``.

    Values may be strings or numbers; a value of a list key (``milestones``, ``lr_values``) is a
    list, or a string with its items separated by ``,``, ``;`` or ``:``.
    ``overrides`` (config keys, ``{"epochs": 1}``) apply to every run; grid values override
    them. Raises :class:`ConfigError` before running anything if a key or value is invalid or
    ``out_dir`` already holds one of the run directories. Failed runs do not raise: they are in
    ``result.failed``, each with the tail of its log. ``log`` gets one line per finished run
    (default: stderr). Writes ``summary.md`` and ``summary.json`` in ``out_dir``.
    """
    log = log or console.log
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    grid = {k.replace("-", "_"): [_as_text(v) for v in vs] for k, vs in grid.items()}
    out_dir = Path(out_dir).absolute()
    points = plan(recipe, grid, seeds, out_dir, overrides)
    runs = [r for p in points for r in p.runs]
    taken = [str(r.run_dir) for r in runs if r.run_dir.exists()]
    if taken:
        raise ConfigError(f"{taken[0]} already exists ({len(taken)} of the sweep's run "
                          f"directories do); choose another --run-dir or delete them")
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = threads_per_job(jobs)
    runner = _Runner({**os.environ, **thread_env(threads)}, timeout)
    log(f"sweep {recipe}: {len(points)} points x {seeds} seeds = {len(runs)} runs, "
        f"{jobs} jobs x {threads} threads; out {out_dir}")
    t0 = time.perf_counter()
    with stopped_by_signals():
        _execute(runner, runs, jobs, log)
    result = SweepResult(recipe, grid, seeds, jobs, out_dir, points, time.perf_counter() - t0)
    atomic.write_text(out_dir / "summary.json", json.dumps(result.to_dict(), indent=2) + "\n")
    atomic.write_text(out_dir / "summary.md", result.markdown())
    return result


def _execute(runner: _Runner, runs: list[Run], workers: int, log: console.Log) -> None:
    """Every run, `workers` at a time; one line each as it ends."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lenet-sweep")
    try:
        futures = [pool.submit(runner.run, r) for r in runs]
        for done, future in enumerate(as_completed(futures), 1):
            log(_describe(future.result(), done, len(runs)))
    except BaseException:  # Ctrl-C: start nothing more, kill what runs, wait for the workers
        pool.shutdown(wait=False, cancel_futures=True)
        runner.group.stop()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
