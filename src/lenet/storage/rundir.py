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
- ``.lock`` (:data:`LOCK`): held (``flock``) by the one process training into the folder.

One run owns a folder: :func:`claim` takes it for a training process (a new folder, an empty
one, or with ``--resume`` the run's own; ``--overwrite`` first clears a folder that holds
nothing but an earlier run's files), and :func:`default` names a new folder that no other run
can share. Every write is atomic. Training, ``--resume``, ``report``, ``compare``, ``sweep``
and ``paper`` all go through this module, so a file is renamed in one place.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lenet.errors import LenetError
from lenet.storage import atomic

if sys.platform != "win32":  # POSIX: a run holds its folder with flock (see _lock)
    import fcntl

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

# A temp file of lenet.storage.atomic (".NAME.XXXXXXXX.tmp"), left behind only by a killed process.
_TMP = re.compile(r"^\..+\.tmp$")
# What a run writes into its folder: `--overwrite` clears a folder only when it holds nothing else.
# `lenet report` adds report.html and its figures (lenet.analysis.figures.run_report), `lenet
# robustness` its curves.
_OWN = re.compile(r"^(config\.json|metrics\.csv|initial\.safetensors|model(_best)?\.safetensors"
                  r"|train\.log|job\.json|result\.json|\.lock|events\.out\.tfevents\..*"
                  r"|report\.html|robustness\.json"
                  r"|(robustness|robustness_examples|curves|rbf_bitmaps|confusion|misclassified"
                  r"|rejection|kernels_first_conv|kernels_second_conv_map\d+|feature_maps_\d+|predictions|samples)\.png)$")
_OWN_CHECKPOINT = re.compile(r"^epoch-\d{4,}(-step-\d+)?\.safetensors$")


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


def _entries(path: Path) -> list[str]:
    """The names in `path` that make it taken: all but the lock, a sweep's log and job written
    before the run starts, and temp files a killed process left."""
    return sorted(n for n in os.listdir(path) if n not in (LOCK, LOG, JOB) and not _TMP.match(n))


def _foreign(path: Path) -> list[str]:
    """The entries of run dir `path` that lenet did not write (`--overwrite` keeps away)."""
    found = []
    for name in os.listdir(path):
        if name == CHECKPOINTS and (path / name).is_dir() and not (path / name).is_symlink():
            found += [f"{CHECKPOINTS}/{n}" for n in os.listdir(path / name)
                      if not (_OWN_CHECKPOINT.match(n) or _TMP.match(n))]
        elif not (_OWN.match(name) or _TMP.match(name)) or (path / name).is_dir():
            found.append(name)
    return sorted(found)


def _clear(path: Path) -> None:
    """Delete an earlier run's files from `path` (all of them lenet's own, see _foreign)."""
    for name in os.listdir(path):
        if name == CHECKPOINTS:
            shutil.rmtree(path / name)
        elif name != LOCK:
            (path / name).unlink()


def remove_temp_files(path: Path) -> None:
    """Delete the temp files a killed process left in run dir `path` (the caller holds it)."""
    for folder in (path, path / CHECKPOINTS):
        if folder.is_dir():
            for name in os.listdir(folder):
                if _TMP.match(name):
                    (folder / name).unlink(missing_ok=True)


def _lock(path: Path) -> int:
    """Hold `path`/.lock (flock) for this process, and write its pid there; the descriptor.

    The kernel drops the lock when the process ends however it ends (kill -9 included), so a
    lock never outlives its run."""
    if sys.platform == "win32":  # not POSIX: no locking, the other rules still hold
        return -1
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise _in_use(path, holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _in_use(path: Path, holder: str) -> RunDirError:
    return RunDirError(f"{path} is in use by another `lenet train` (process {holder}); wait "
                       "for it to finish, or choose another --run-dir")


def _check_holder(path: Path) -> None:
    """Raise if a process holds `path`/.lock, without creating the file when there is none."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(path / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(path, os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                      ) from None
    finally:
        os.close(fd)


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
    holder. Temp files a killed process left are deleted. A folder this call created is removed
    again if the block fails before anything was written into it (`created`: the caller just
    made it, with :func:`default`). Trouble with the file system is a one-line RunDirError.
    """
    path = Path(run_dir)
    fd = -1
    try:
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is not a directory; choose another --run-dir")
        if path.is_dir():
            # Checked before the lock file is made: a refused folder is left as it was.
            _check_holder(path)
            _check_free(path, resume, overwrite)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()
                created = True
            except FileExistsError:  # another process was quicker: the lock decides
                pass
        fd = _lock(path)
        if _check_free(path, resume, overwrite):  # again: it may have changed meanwhile
            _clear(path)
        remove_temp_files(path)
    except OSError as e:
        _release(path, fd, created, failed=True)
        raise write_error(path, e) from None
    except BaseException:
        _release(path, fd, created, failed=True)
        raise
    try:
        yield path
    except BaseException:
        _release(path, fd, created, failed=True)
        raise
    _release(path, fd, created, failed=False)


def _release(path: Path, fd: int, created: bool, failed: bool) -> None:
    if fd >= 0:
        os.close(fd)  # drops the flock
    if failed and created:
        # Nothing of the run was written yet: leave no empty folder behind.
        try:
            if not _entries(path):
                (path / LOCK).unlink(missing_ok=True)
                path.rmdir()
        except OSError:
            pass


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
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else e
        raise RunDirError(f"{path}: cannot read the saved config ({why})") from None
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
        with path.open(newline="") as f:
            return _checked_rows(path, list(csv.reader(f)), required)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
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
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: cannot read {what} ({e})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
