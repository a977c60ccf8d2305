"""The run directory: the one place that knows what a run leaves behind and how it is named.

``runs/<time>-<name>/`` (:func:`default`) holds:

- ``config.json`` (:data:`CONFIG`): the fully resolved training config;
- ``metrics.csv`` (:data:`METRICS`): one row per epoch;
- ``initial.safetensors`` / ``model.safetensors`` (:data:`INITIAL`, :data:`WEIGHTS`): the
  weights before and after training (read them with :mod:`lenet.models.weights`);
- ``model_best.safetensors`` (:data:`BEST`): with a validation split only, the weights of the
  epoch with the best validation accuracy (chosen on validation, never on test);
- ``checkpoints/`` (:data:`CHECKPOINTS`): what ``lenet train --resume`` continues from;
- ``train.log`` (:data:`LOG`): the run's stderr, when a sweep started it;
- ``job.json`` (:data:`JOB`): the config a sweep (or ``lenet paper``) hands the worker process
  that trains the run (:mod:`lenet.training.worker`), written before the run starts;
- ``result.json`` (:data:`RESULT`): that worker's result, the figures ``lenet train --json``
  prints;
- ``.lock`` (:data:`LOCK`): held (``flock``) by the one process training into the folder,
  and removed when it is done (the kernel drops the lock of a killed process; the file then
  stays, harmless, until the next claim).

One run owns a folder: :func:`claim` takes it for a training process (a new folder, an empty
one, or with ``--resume`` the run's own; ``--overwrite`` first clears a folder that holds
nothing but an earlier run's files), and :func:`default` names a new folder that no other run
can share. Every write is atomic.

The lock is taken by the book (:mod:`lenet.storage.lockfile`): never through a symbolic link,
never blocking on a FIFO (either is one RunDirError); of any number of simultaneous claims
exactly one wins, and a loser never touches the winner's folder or lock. The holder calls
:func:`check_lock` before each write: a lock removed or replaced meanwhile (another process
may now train there) stops the run with one line.

Training, ``--resume``, ``report``, ``compare``, ``sweep`` and ``paper`` all go through this
module, so a file is renamed in one place.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from lenet.errors import LenetError
from lenet.storage import atomic, lockfile, regular

CONFIG = "config.json"
METRICS = "metrics.csv"
INITIAL = "initial.safetensors"
WEIGHTS = "model.safetensors"
BEST = "model_best.safetensors"
CHECKPOINTS = "checkpoints"
LOG = "train.log"
JOB = "job.json"
RESULT = "result.json"
LOCK = ".lock"
ROBUSTNESS = "robustness.json"  # `lenet robustness` into a run dir; `lenet report` shows it
RUN_ID = "run_id"  # the key of config.json that names the run its checkpoints belong to

PathLike = str | os.PathLike[str]

# What a run writes into its folder: `--overwrite` clears a folder only when it holds nothing else.
# `lenet report` adds report.html and its figures (lenet.analysis.figures.run_report), `lenet
# robustness` its curves.
_OWN = re.compile(r"^(config\.json|metrics\.csv|initial\.safetensors|model(_best)?\.safetensors"
                  r"|train\.log|job\.json|result\.json|\.lock|events\.out\.tfevents\..*"
                  r"|report\.html|robustness\.json"
                  r"|(robustness|robustness_examples|curves|rbf_bitmaps|confusion|misclassified"
                  r"|rejection|kernels_first_conv|kernels_second_conv_map\d+|feature_maps_\d+|predictions|samples)\.png)$")
_OWN_CHECKPOINT = re.compile(r"^epoch-\d{4,}(-step-\d+)?\.safetensors$")
_CHECK = "lenet-check"  # the probe file of atomic.ensure_writable
_MAX_JSON = 16 * 2**20  # config.json, job.json, result.json: a few KB when lenet wrote them
_MAX_METRICS = 64 * 2**20  # metrics.csv: ~100 bytes an epoch


class RunDirError(LenetError):
    """A run directory is missing, in use, taken by another run, or cannot be read or written."""


def default(name: str, root: PathLike = "runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<name>-<4 hex>``: a new, empty folder for a run, sweep or paper
    table, created here. Two runs started in the same second get different random suffixes,
    and the folder is created exclusively (a taken name is drawn again), so none is shared."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as e:
        raise write_error(root, e) from None
    raise RunDirError(f"{root}: could not create a new run folder there (100 names taken); "
                      "pass --run-dir")


def require(run_dir: PathLike) -> Path:
    """`run_dir` as a Path, or a clear error if it is not a directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (`lenet train --run-dir` makes one)")
    return path


def write_error(path: PathLike, e: OSError, resume: PathLike | None = None) -> RunDirError:
    """One line for an OSError met writing under `path` (a run dir); with `resume`, how to go
    on once it is fixed (a checkpoint of that run is intact)."""
    where = Path(path)
    if e.errno == errno.ENOSPC or e.errno == getattr(errno, "EDQUOT", None):
        text = f"{where}: no space left on its device ({e.strerror}); free some space"
    elif e.errno == errno.EROFS:
        text = f"{where} is on a read-only file system; choose another --run-dir"
    elif e.errno in (errno.EACCES, errno.EPERM):
        text = f"{where}: permission denied; choose another --run-dir, or make it writable"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST) or (where.exists() and not where.is_dir()):
        text = (f"{where} (or a folder above it) exists and is not a directory; choose "
                "another --run-dir")
    else:
        text = f"{where}: cannot write ({e.strerror or e}); choose another --run-dir"
    if resume is not None:
        text += f"; then continue with `lenet train --resume {resume}`"
    return RunDirError(text)


def _regular(path: Path) -> bool:
    """A regular file, not a link to one (lenet writes no links, folders or FIFOs)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _own_temp(folder: Path, name: str) -> bool:
    """A temp file lenet's atomic writes leave when killed (``.config.json.ab12cd34.tmp``):
    a regular file whose target is one of lenet's names. A user's ``.notes.tmp`` is not."""
    target = atomic.temp_target(name)
    return target is not None and bool(
        _OWN.match(target) or _OWN_CHECKPOINT.match(target) or target == _CHECK
    ) and _regular(folder / name)


def _entries(path: Path) -> list[str]:
    """The names in `path` that make it taken: all but the lock, a sweep's log and job written
    before the run starts, and temp files a killed process left."""
    return sorted(n for n in os.listdir(path)
                  if n not in (LOCK, LOG, JOB) and not _own_temp(path, n))


def _foreign(path: Path) -> list[str]:
    """The entries of run dir `path` that lenet did not write (`--overwrite` keeps away):
    anything not named as lenet names its files, and anything of that name that is not a
    regular file (a user's folder called ``epoch-0001.safetensors``, a link)."""
    found = []
    for name in os.listdir(path):
        if name == CHECKPOINTS and (path / name).is_dir() and not (path / name).is_symlink():
            found += [f"{CHECKPOINTS}/{n}" for n in os.listdir(path / name)
                      if not ((_OWN_CHECKPOINT.match(n) and _regular(path / name / n))
                              or _own_temp(path / name, n))]
        elif not ((_OWN.match(name) and _regular(path / name)) or _own_temp(path, name)):
            found.append(name)
    return sorted(found)


def _clear(path: Path) -> None:
    """Delete an earlier run's files from `path` (all of them lenet's own, see _foreign): file
    by file, so that nothing else is ever removed."""
    for name in os.listdir(path):
        if name == CHECKPOINTS:
            for inner in os.listdir(path / name):
                (path / name / inner).unlink()
            (path / name).rmdir()
        elif name != LOCK:
            (path / name).unlink()


def remove_temp_files(path: Path) -> None:
    """Delete the temp files a killed process left in run dir `path` (the caller holds it)."""
    for folder in (path, path / CHECKPOINTS):
        if folder.is_dir() and not folder.is_symlink():
            for name in os.listdir(folder):
                if _own_temp(folder, name):
                    (folder / name).unlink(missing_ok=True)


# The run dirs this process holds (their absolute paths), and the lock each holds.
_HELD: dict[str, lockfile.Lock] = {}


def _lock(path: Path) -> lockfile.Lock | None:
    """Hold `path`/.lock for this process (:mod:`lenet.storage.lockfile`); None on Windows.
    Each way it can fail is one RunDirError line."""
    try:
        lock = lockfile.acquire(path / LOCK)
    except lockfile.Busy as e:
        raise _in_use(path, e.holder) from None
    except lockfile.NotAFile as e:
        raise RunDirError(f"{path / LOCK} is {e.kind}, not a regular file: lenet keeps its "
                          "lock there and never writes through or waits on anything else; "
                          "remove it or choose another --run-dir") from None
    except lockfile.Unstable:
        raise RunDirError(f"{path / LOCK} keeps being removed or replaced while lenet takes "
                          "it; another program is at work in that folder: choose another "
                          "--run-dir") from None
    if lock is not None:
        _HELD[os.path.abspath(path)] = lock
    return lock


def still_held(run_dir: PathLike) -> bool:
    """Whether this process still holds `run_dir` as it claimed it: its ``.lock`` is the very
    file it locked (not removed, not replaced). True for a folder it does not hold."""
    lock = _HELD.get(os.path.abspath(run_dir))
    return lock is None or lock.held()


def check_lock(run_dir: PathLike) -> None:
    """Raise :class:`RunDirError` unless this process still holds `run_dir` (see
    :func:`still_held`); the trainer calls it before each write, so a run whose lock was
    removed or replaced (a second trainer may have claimed the folder since) stops there."""
    if not still_held(run_dir):
        raise RunDirError(f"{Path(run_dir) / LOCK} was removed or replaced while this run "
                          f"trained, so another process may be writing into {run_dir}; "
                          f"stopped. Once no other run uses it, continue with `lenet train "
                          f"--resume {run_dir}`")


def _in_use(path: Path, holder: str) -> RunDirError:
    return RunDirError(f"{path} is in use by another `lenet train` (process {holder}); wait "
                       "for it to finish, or choose another --run-dir")


def _check_free(path: Path, resume: bool, overwrite: bool) -> bool:
    """Refuse `path` if another run's files are there, unless resuming it, or `overwrite` and
    they are all lenet's own; whether there is an earlier run to clear."""
    taken = _entries(path)
    if resume or not taken:
        return False
    if not overwrite:
        shown = ", ".join(taken[:4]) + (" ..." if len(taken) > 4 else "")
        raise RunDirError(f"{path} is not empty ({shown}): it holds another run; continue it "
                          f"with `lenet train --resume {path}`, replace it with --overwrite, "
                          "or choose another --run-dir")
    foreign = _foreign(path)
    if foreign:
        shown = ", ".join(foreign[:4]) + (" ..." if len(foreign) > 4 else "")
        raise RunDirError(f"{path} holds files lenet did not write ({shown}), so --overwrite "
                          "will not clear it; move them away or choose another --run-dir")
    return True


@contextmanager
def claim(run_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
          created: bool = False) -> Iterator[Path]:
    """Own `run_dir` for one training process until the block ends.

    The folder is created if missing, must be empty otherwise (a sweep's ``train.log`` and
    ``job.json`` aside), unless `resume` (the run's own folder) or `overwrite` (an earlier
    run's files are deleted first; a folder with other files is refused, untouched). Its
    ``.lock`` is held meanwhile: a second process gets a :class:`RunDirError` naming the
    holder; the lock file is removed at the end (only if it is still this process's). Temp
    files a killed process left are deleted. A folder this call created is removed again if
    the block fails before anything was written into it (`created`: the caller just made it,
    with :func:`default`) -- only while this process holds its lock, so a claim that lost a
    race never touches the winner's folder. Trouble with the file system is a one-line
    RunDirError.
    """
    path = Path(run_dir)
    lock: lockfile.Lock | None = None
    try:
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is not a directory; choose another --run-dir")
        if path.is_dir():
            if not os.path.lexists(path / LOCK):
                # Checked before the lock file is made: a refused folder is left as it was.
                _check_free(path, resume, overwrite)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()
                created = True
            except FileExistsError:  # another process was quicker: the lock decides
                pass
        lock = _lock(path)
        if _check_free(path, resume, overwrite):  # under the lock: it may have changed
            _clear(path)
        if lock is not None:
            lock.stamp()
        remove_temp_files(path)
    except OSError as e:
        _release(path, lock, created, failed=True)
        raise write_error(path, e) from None
    except BaseException:
        _release(path, lock, created, failed=True)
        raise
    try:
        yield path
    except BaseException:
        _release(path, lock, created, failed=True)
        raise
    _release(path, lock, created, failed=False)


def _release(path: Path, lock: lockfile.Lock | None, created: bool, failed: bool) -> None:
    """Let `path` go: its lock file removed if still this process's, and after a failed start
    in a folder this call made, the folder if nothing else is in it. Without the lock (a
    claim that lost the race) nothing is touched."""
    if lock is None:
        return
    _HELD.pop(os.path.abspath(path), None)
    if lock.release() and failed and created:
        with suppress(OSError):  # fails if something was written: then it is kept
            path.rmdir()  # nothing of the run was written: leave no empty folder behind


def new_run_id() -> str:
    """A fresh run id, stamped into config.json and every checkpoint of the run."""
    return secrets.token_hex(8)


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
    data = _load_json(path, "the saved config")
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


def read_metrics(run_dir: PathLike, required: Sequence[str] = ("epoch",)
                 ) -> list[dict[str, str]]:
    """metrics.csv's rows as strings (``[]`` if the run has none yet).

    The header must name the `required` columns, every row must have one cell per column, and
    every cell must be empty or a number (what training writes); anything else is a
    :class:`RunDirError` naming the file and the line."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    try:
        text = _read_text(path, _MAX_METRICS, "the metrics")
        return _checked_rows(path, list(csv.reader(io.StringIO(text, newline=""))), required)
    except csv.Error as e:
        raise RunDirError(f"{path}: cannot read the metrics ({e})") from None


def _checked_rows(path: Path, lines: list[list[str]], required: Sequence[str]
                  ) -> list[dict[str, str]]:
    if not lines:
        return []
    header = lines[0]
    missing = [c for c in required if c not in header]
    if missing or len(set(header)) != len(header):
        what = ("a column named twice" if len(set(header)) != len(header)
                else f"no {' or '.join(missing)} column")
        raise RunDirError(f"{path}, line 1: not a lenet metrics header ({what}); the file is "
                          "damaged or was edited")
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells:  # a blank line, as csv.DictReader skips it
            continue
        if len(cells) != len(header):
            raise RunDirError(f"{path}, line {number}: {len(cells)} values for the "
                              f"{len(header)} columns; the file is damaged or was edited")
        for column, cell in zip(header, cells, strict=True):
            if cell and not _is_number(cell):
                raise RunDirError(f"{path}, line {number}: {column} is {cell!r:.40}, not a "
                                  "number; the file is damaged or was edited")
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_job(run_dir: PathLike, config: Mapping[str, Any]) -> Path:
    """``job.json``: the config the worker process is to train into `run_dir`."""
    return atomic.write_text(Path(run_dir) / JOB, json.dumps(dict(config), indent=2) + "\n")


def read_job(run_dir: PathLike) -> dict[str, Any]:
    """The config :func:`write_job` left in `run_dir`, as a dict of config keys."""
    return _read_object(Path(run_dir) / JOB, "the job's config")


def write_result(run_dir: PathLike, result: Mapping[str, Any]) -> Path:
    """``result.json``: a finished run's figures (what ``lenet train --json`` prints)."""
    return atomic.write_text(Path(run_dir) / RESULT, json.dumps(dict(result), indent=2) + "\n")


def read_result(run_dir: PathLike) -> dict[str, Any] | None:
    """The figures :func:`write_result` left in `run_dir`; None if the run wrote none."""
    path = Path(run_dir) / RESULT
    return _read_object(path, "the run's result") if path.is_file() else None


def _read_object(path: Path, what: str) -> dict[str, Any]:
    data = _load_json(path, what)
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_text(path: Path, limit: int, what: str) -> str:
    """The text of regular file `path`, refused (RunDirError) past `limit` bytes: a sparse or
    runaway file is never read into memory whole."""
    try:
        return regular.read_regular(path, limit).decode("utf-8")
    except regular.FileTooLarge as e:
        raise RunDirError(f"{path}: {e.size:,} bytes, more than {what} can be (at most "
                          f"{limit:,}); the file is damaged or not lenet's") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: cannot read {what} ({e})") from None


def _load_json(path: Path, what: str) -> Any:
    """`path` parsed as JSON; a damaged or hostile file (nesting too deep for the parser, an
    integer of more digits than Python converts) is one RunDirError naming it."""
    text = _read_text(path, _MAX_JSON, what)
    try:
        return json.loads(text)
    except RecursionError:
        raise RunDirError(f"{path}: cannot read {what} (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, and "Exceeds the limit (4300 digits)"
        raise RunDirError(f"{path}: cannot read {what} ({str(e).splitlines()[0]:.160}); the "
                          "file is damaged or was edited") from None
