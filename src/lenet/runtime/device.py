"""Where to train: ``pick`` the device, and the precision a run uses on it (``pick_precision``).

``--device`` takes ``auto`` or any torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``,
``xpu``, ...; checked by :func:`lenet.commands.options.is_device_form` while the command line
parses).
``auto`` asks ``torch.accelerator`` where this torch has it (2.6 and later), which knows every
backend torch was built for; an older torch is asked about CUDA, then Apple's MPS. A device
this machine lacks is one :class:`ConfigError` naming the devices it has.
"""

from __future__ import annotations

import torch

from lenet.errors import ConfigError
from lenet.runtime.cpu import cpu_has_amx, cpu_has_bf16, cpu_isa


def pick(name: str = "auto") -> torch.device:
    """`name` as a torch.device this machine has; ``auto`` is its accelerator, else the CPU."""
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


# `--precision auto` on a CPU with native bf16: bf16 only from this batch size up, where the
# convolutions are large enough for bf16's halved memory traffic to beat the casts it adds
# (BENCHMARKS.md, "Precision"); at batch 64 fp32 is as fast or faster.
AUTO_BF16_MIN_BATCH = 256


def pick_precision(requested: str, device: torch.device, batch_size: int,
                   compiled_fp32: bool = False) -> tuple[str, str | None]:
    """The precision a run uses for `requested` (fp32, bf16, fp16 or auto) on `device`, and a
    note for the user when the choice will be slow; fp16 off CUDA is a :class:`ConfigError`.

    `compiled_fp32`: the run would train with lenet's compiled fp32 step (lenet5 with numba).
    On a CPU with AVX512-BF16 but no AMX that step beat torch's bf16 at batch 512
    (BENCHMARKS.md), so auto keeps fp32 there; with AMX, torch's bf16 stays the choice from
    batch 256 (measured against torch's fp32 only).
    """
    if requested == "auto":
        if device.type == "cuda":
            return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), None
        if (device.type == "cpu" and cpu_has_bf16() and batch_size >= AUTO_BF16_MIN_BATCH
                and (not compiled_fp32 or cpu_has_amx())):
            return "bf16", None
        return "fp32", None
    if requested == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (with a GradScaler), not "
                          f"{device}; use fp32, or bf16 where the hardware has it")
    if requested == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        return "bf16", (f"note: bf16 on this CPU ({cpu_isa()}, no AVX512-BF16 or AMX) is "
                        "emulated, several times slower than fp32; --precision auto picks fp32 "
                        "here")
    return requested, None
