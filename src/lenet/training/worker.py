"""The process that trains one run of a sweep (or of `lenet paper`):

    python -m lenet.training.worker RUN_DIR

It reads the config the sweep wrote into ``RUN_DIR/job.json`` (:func:`lenet.storage.rundir.
write_job`), trains it into RUN_DIR and writes the run's figures to ``RUN_DIR/result.json``
(what `lenet train --json` prints). Each run its own process, so a crash, a NaN or a timeout
stays inside that run. Its log (stderr) and exit status are `lenet train`'s: a user's mistake or
a diverged run is one ``lenet: error: ...`` line and status 2, an interrupted run 130 or 143.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from lenet.config import TrainConfig, resolve
from lenet.errors import exit_status
from lenet.storage import rundir
from lenet.training import train


def command(run_dir: Path) -> list[str]:
    """The command line of a worker process for the job in `run_dir`."""
    return [sys.executable, "-m", "lenet.training.worker", str(run_dir)]


def job_config(run_dir: Path) -> TrainConfig:
    """The config the sweep left in `run_dir`, checked as a saved config is (every key given:
    the recipe's defaults do not come into it)."""
    return resolve(None, {**rundir.read_job(run_dir), "run_dir": str(run_dir)})


def main(argv: Sequence[str] | None = None) -> int:
    """Train the job in ``argv[0]`` (a run dir); the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m lenet.training.worker RUN_DIR\n")
        return 2
    run_dir = Path(args[0])
    return exit_status(lambda: _train(run_dir))


def _train(run_dir: Path) -> int:
    result = train(job_config(run_dir))
    rundir.write_result(run_dir, result.summary())
    return 0


if __name__ == "__main__":
    code = main()
    # The process ends here: skip the collector's walk over every object torch made (as
    # lenet.cli.script does).
    gc.freeze()
    raise SystemExit(code)
