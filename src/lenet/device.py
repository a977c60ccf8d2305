"""Where to train: ``pick`` the device, and how many CPU cores this process has to share among
its threads and jobs.

``--device`` takes ``auto`` or any torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``,
``xpu``, ...). ``auto`` asks ``torch.accelerator`` where this torch has it (2.6 and later), which
knows every backend torch was built for; an older torch is asked about CUDA, then Apple's MPS.
A device this machine lacks is one :class:`ConfigError` naming the devices it has.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from lenet.errors import ConfigError

if TYPE_CHECKING:
    import torch

# A torch device string: a backend name, optionally ":index" (torch.device's own grammar).
_FORM = re.compile(r"[a-z][a-z0-9_]*(:[0-9]+)?")
# Device types every torch build parses; another name (a renamed private backend such as
# "npu", or a typo) is asked of torch itself.
_COMMON = frozenset({"cpu", "cuda", "mps", "xpu", "mtia", "hpu", "meta"})


def is_device_form(name: str) -> bool:
    """Whether `name` is ``auto`` or a device string torch parses (``type[:index]``); torch is
    imported only for a type outside the common ones, so the CLI parses them cheaply."""
    if _FORM.fullmatch(name) is None:
        return False
    if name == "auto" or name.partition(":")[0] in _COMMON:
        return True
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def pick(name: str = "auto") -> torch.device:
    """`name` as a torch.device this machine has; ``auto`` is its accelerator, else the CPU."""
    import torch

    if name == "auto":
        return _auto()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):  # torch lists ~20 types; ours names what is here
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or a torch device such "
                          f"as cuda, cuda:1, mps or xpu (available here: "
                          f"{', '.join(available())})") from None
    _check_available(name, device)
    return device


def _auto() -> torch.device:
    import torch

    accel = getattr(torch, "accelerator", None)
    if accel is not None:  # torch >= 2.6: whichever accelerator this build has (cuda, mps, xpu...)
        current = accel.current_accelerator() if accel.is_available() else None
        return torch.device(current.type if current is not None else "cpu")
    for kind in ("cuda", "mps"):
        if _count(kind):
            return torch.device(kind)
    return torch.device("cpu")


def _count(kind: str) -> int:
    """How many `kind` devices this process can use (0 when torch lacks the backend)."""
    import torch

    if kind == "cpu":
        return 1
    if kind == "mps":  # Apple's backend lives in torch.backends and has one device
        mps = getattr(torch.backends, "mps", None)
        return int(bool(mps and mps.is_available()))
    module = getattr(torch, kind, None)  # torch.cuda, torch.xpu, torch.mtia, ...
    try:
        if module is None or not module.is_available():
            return 0
        count = getattr(module, "device_count", None)
        return int(count()) if count is not None else 1
    except Exception:  # a backend whose probe fails (driver trouble) is not usable here
        return 0


def available() -> list[str]:
    """The device strings this machine offers, the CPU first (``cpu``, ``cuda:0``, ``mps``...)."""
    names = ["cpu"]
    if _count("mps"):
        names.append("mps")
    for kind in ("cuda", "xpu", "mtia", "hpu"):
        names += [f"{kind}:{i}" for i in range(_count(kind))]
    return names


def _check_available(name: str, device: torch.device) -> None:
    import torch

    count = _count(device.type)
    if count == 0:
        what = ("no CUDA GPU is visible to this torch build" if device.type == "cuda"
                else f"no {device.type} device is available to this torch build")
        raise ConfigError(f"--device {name}: {what} (torch {torch.__version__}); available "
                          f"here: {', '.join(available())} (or use --device auto)")
    if device.type != "cpu" and device.index is not None and device.index >= count:
        raise ConfigError(f"--device {name}: only {count} {device.type} device"
                          f"{'s' if count > 1 else ''} visible (index 0 to {count - 1}); "
                          f"available here: {', '.join(available())}")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Intra-op threads for each of `jobs` processes sharing this machine's cores."""
    return max(1, available_cores() // jobs)
