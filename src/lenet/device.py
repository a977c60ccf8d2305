"""Where to train: ``pick`` the device (``auto`` prefers CUDA, then Apple's MPS, then the CPU),
and how many CPU cores this process has to share among its threads and jobs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lenet.errors import ConfigError

if TYPE_CHECKING:
    import torch


def pick(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to this torch build "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple's MPS backend is not available; use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Intra-op threads for each of `jobs` processes sharing this machine's cores."""
    return max(1, available_cores() // jobs)
