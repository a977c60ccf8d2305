"""Compile lenet's numba training steps ahead of time: ``python -m lenet.training.steps.warm``.

A run compiles its numba step before its first epoch anyway (``Built.warm``), once per CPU kind,
and numba keeps the machine code in its on-disk cache, next to the kernels' sources where that
folder is writable, else in the user's cache folder. ``make install`` runs this module so that
the first ``make train`` starts at full speed. Without numba it says so and does nothing.
"""

from __future__ import annotations

import sys
import time
from typing import cast

import torch

from lenet.models import create
from lenet.models.lenet5 import LeNet5
from lenet.models.lenet1998 import LeNet1998
from lenet.training.optim.sdlm import SDLM


def warm() -> dict[str, float]:
    """Compile (or load from numba's cache) the ``lenet5`` batch step and the ``lenet5-1998``
    per-pattern sequence step: {step: seconds}. Raises ImportError without numba."""
    from lenet.training.steps.lenet5_numba import NumbaLeNet5Step  # noqa: PLC0415  (extra: numba)
    from lenet.training.steps.pattern_numba import (  # noqa: PLC0415  (extra: numba)
        NumbaPatternStep,
    )

    seconds = {}
    model = cast(LeNet5, create("lenet5"))
    started = time.perf_counter()
    NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.01), threads=1).warm()
    seconds["lenet5"] = time.perf_counter() - started
    paper = cast(LeNet1998, create("lenet5-1998"))
    started = time.perf_counter()
    NumbaPatternStep(paper, SDLM(paper.parameters(), lr=1e-5), "rbf-map").warm(chunk=True)
    seconds["lenet5-1998"] = time.perf_counter() - started
    return seconds


def main() -> int:
    try:
        seconds = warm()
    except ImportError as e:
        print(f"numba is not installed ({e}): lenet trains with its torch steps; "
              'pip install "lenet[fast]" for the compiled ones', file=sys.stderr)
        return 0
    for name, s in seconds.items():
        print(f"{name}: numba step ready in {s:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
