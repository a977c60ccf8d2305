"""`lenet train --nproc N`: N training processes (DDP) through torchrun's own launcher.

:func:`relaunch_with_torchrun` starts torchrun as a child process (through
:mod:`lenet.runtime.jobs`), as the `torchrun` command does; torchrun runs :func:`torchrun_quietly`,
so that a failed or interrupted rank ends in its own one-line message (each rank prints it)
instead of torchrun's traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser
from torch.distributed.run import run as torchrun

from lenet.runtime import jobs
from lenet.runtime.threads import threads_per_job

# Seconds the workers have, after Ctrl-C (which reaches them as it reaches us), to save a
# checkpoint and stop before they are killed.
INTERRUPT_GRACE = 120.0


def without_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` less its ``--nproc N`` (or ``--nproc=N``): what each worker runs."""
    rest: list[str] = []
    args = iter(argv)
    for a in args:
        if a == "--nproc":
            next(args, None)  # drop its value too
        elif not a.startswith("--nproc="):
            rest.append(a)
    return rest


def relaunch_with_torchrun(nproc: int, argv: Sequence[str] | None = None) -> int:
    """`lenet ARGV` (default: this process's own arguments) with ``--nproc N`` is
    `torchrun --standalone --nproc_per_node N -m lenet ARGV` less ``--nproc``; its exit status.

    Each process gets an equal share of the cores (torchrun's own default is one thread and a
    warning); an ``OMP_NUM_THREADS`` the user set is kept. A second Ctrl-C, or workers still
    running :data:`INTERRUPT_GRACE` seconds after the first, are killed: status 130. A SIGTERM
    or SIGHUP sent to this process alone is passed on to torchrun, which stops its workers (see
    :func:`lenet.runtime.jobs.run_foreground`): status 143 or 129, no worker left running.
    """
    rest = without_nproc(sys.argv[1:] if argv is None else argv)
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(nproc)))
    code = ("from lenet.training.launch import torchrun_quietly; "
            "raise SystemExit(torchrun_quietly())")
    cmd = [sys.executable, "-c", code, "--standalone", f"--nproc_per_node={nproc}",
           "-m", "lenet", *rest]
    try:
        return jobs.run_foreground(cmd, env=env, grace=INTERRUPT_GRACE)
    except KeyboardInterrupt:  # a second Ctrl-C, or stuck: killed
        return 130


def torchrun_quietly() -> int:
    """torchrun's launcher with its arguments from sys.argv; a failed or interrupted worker
    gives its exit code, without torchrun's traceback (the workers have said why)."""
    launch = get_args_parser().parse_args(sys.argv[1:])
    # torchrun's agent logs each failed worker at ERROR level; the workers have said why.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(launch)
    except SignalException as e:  # Ctrl-C or a kill: the workers said where they stopped
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode < 0:  # killed by a signal: no message of its own
            print(f"lenet: error: process {rank} of {launch.nproc_per_node} was killed by "
                  f"signal {-failure.exitcode}", file=sys.stderr)
            return 1
        return failure.exitcode
    return 0
