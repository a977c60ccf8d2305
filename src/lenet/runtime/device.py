"""Where to train: ``pick`` the device, and how many CPU cores this process has to share among
its threads and jobs.

``--device`` takes ``auto`` or any torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``,
``xpu``, ...). ``auto`` asks ``torch.accelerator`` where this torch has it (2.6 and later), which
knows every backend torch was built for; an older torch is asked about CUDA, then Apple's MPS.
A device this machine lacks is one :class:`ConfigError` naming the devices it has.
"""

from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING, NamedTuple

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


@functools.cache
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once; empty where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name, e.g. ``AMD EPYC``."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def cpu_family_model() -> str:
    """x86's CPU family and model numbers, e.g. ``family 26, model 2`` (AMD Zen 5): what tells
    two CPUs apart where a virtual machine shows only ``AMD EPYC``; empty where /proc/cpuinfo
    has no such fields."""
    fields: dict[str, str] = {}
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("cpu family", "model") and key not in fields:
            fields[key] = value.strip()
        if not line.strip() and fields:  # the first processor's block is enough
            break
    if "cpu family" not in fields or "model" not in fields:
        return ""
    return f"family {fields['cpu family']}, model {fields['model']}"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo has none)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_isa() -> str:
    """The vector extensions that decide CPU speed: ``AVX2``, ``AVX-512``, ``AVX-512 + BF16``,
    ``AVX-512 + BF16 + AMX``, or ``no AVX2``."""
    flags = cpu_flags()
    if "avx512f" not in flags:
        return "AVX2" if "avx2" in flags else "no AVX2"
    parts = ["AVX-512"]
    if "avx512_bf16" in flags:
        parts.append("BF16")
    if "amx_tile" in flags:
        parts.append("AMX")
    return " + ".join(parts)


# oneDNN's instruction-set levels, lowest first: the values of ONEDNN_MAX_CPU_ISA (DNNL_ is
# the older prefix), which caps the kernels torch's convolutions and bf16 matmuls use. Two
# names of one level (AVX10_1_512 is AVX512_CORE_FP16) stand side by side.
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
                "AVX10_1_512_AMX", "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16",
                "AVX512_CORE_AMX_FP16")
# Variables that make the libraries use less of the CPU than it has (for measuring an older
# CPU's code paths on a newer one): torch's own kernels, oneDNN, MKL, numba's code generation.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


class _Cap(NamedTuple):
    """One level of `lenet bench --isa`."""

    flag: str  # the /proc/cpuinfo flag the CPU needs for it
    env: dict[str, str]  # the caps of torch, oneDNN and MKL (and numba's CPU name)
    above: tuple[str, ...]  # prefixes of LLVM's feature names above it: off in numba


_CAPS = {"avx2": _Cap("avx2", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                               "MKL_ENABLE_INSTRUCTIONS": "AVX2", "NUMBA_CPU_NAME": "haswell"},
                      ("avx512", "amx", "avxvnni", "avxifma", "avxneconvert", "avx10",
                       "evex512")),
         "avx512": _Cap("avx512f", {"ATEN_CPU_CAPABILITY": "avx512",
                                    "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
                                    "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
                        ("avx512bf16", "amx", "avx512fp16", "avx10"))}
ISA_LEVELS = tuple(_CAPS)


def isa_cap_environment(isa: str) -> dict[str, str]:
    """Variables (``ISA_CAPS``) that make torch, oneDNN, MKL and numba use only `isa`
    (``avx2``: no AVX-512, bf16 or AMX; ``avx512``: AVX-512 without BF16, FP16 or AMX), to
    measure an older CPU's code paths on this one. The caches, clocks and cores stay this
    CPU's, so figures under a cap are not an older machine's. ONNX Runtime has no such cap."""
    if isa not in _CAPS:
        raise ConfigError(f"--isa {isa}: expected one of {', '.join(ISA_LEVELS)}")
    cap = _CAPS[isa]
    if cap.flag not in cpu_flags():
        raise ConfigError(f"--isa {isa}: this CPU ({cpu_isa()}) has no {isa.upper()}; --isa "
                          "only caps the libraries below what the CPU has")
    env = dict(cap.env)
    try:
        import llvmlite.binding as llvm
    except ImportError:  # no numba either: nothing of ours to compile
        return env
    features = llvm.get_host_cpu_features().flatten().split(",")
    env["NUMBA_CPU_FEATURES"] = ",".join(
        "-" + f[1:] if f[1:].startswith(cap.above) else f for f in features if f)
    return env


def _onednn_allows(level: str) -> bool:
    """Whether ONEDNN_MAX_CPU_ISA (if set to a level oneDNN knows) leaves `level` in use."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "")
    cap = cap.strip().upper()
    if cap not in _ONEDNN_ISAS:  # unset, ALL, DEFAULT, or a name oneDNN ignores too
        return True
    return _ONEDNN_ISAS.index(cap) >= _ONEDNN_ISAS.index(level)


def isa_caps() -> dict[str, str]:
    """The ISA caps set in the environment (see ``ISA_CAPS``), for reports; numba's feature
    list is summed up by the highest level it turns off (AVX-512, else its bf16)."""
    caps = {name: os.environ[name] for name in ISA_CAPS if os.environ.get(name)}
    if "NUMBA_CPU_FEATURES" in caps:
        listed = set(caps["NUMBA_CPU_FEATURES"].split(","))
        caps["NUMBA_CPU_FEATURES"] = next(
            (f for f in ("-avx512f", "-avx512bf16") if f in listed), "set")
    return caps


def cpu_has_bf16() -> bool:
    """Native bf16 dot products (AVX512-BF16 or AMX) that oneDNN may use; elsewhere bf16 is
    emulated, and slow (also where ONEDNN_MAX_CPU_ISA caps oneDNN below AVX512_CORE_BF16:
    0.3 GFLOP/s for a bf16 matmul capped to AVX2 against 768 uncapped, BENCHMARKS.md)."""
    flags = cpu_flags()
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and _onednn_allows("AVX512_CORE_BF16")


def cpu_has_amx() -> bool:
    """AMX tiles for bf16 that oneDNN may use."""
    return "amx_bf16" in cpu_flags() and _onednn_allows("AVX10_1_512_AMX")


def _running_elsewhere() -> int | None:
    """Runnable tasks on the machine now that are not this process's own threads
    (/proc/loadavg's 4th field, less this process's threads in state R: torch's own worker
    threads spin for a while after each op and must not count as other work)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for task in os.scandir("/proc/self/task"):
            with open(os.path.join(task.path, "stat")) as f:
                own += f.read().rsplit(")", 1)[-1].split()[0] == "R"
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - max(own, 1))


def free_cores(samples: int = 5, gap: float = 0.01) -> int:
    """Cores of this process's affinity set that other work is not using right now.

    The fewest runnable tasks elsewhere over a few samples ``gap`` seconds apart (a job that
    keeps a core busy is in every sample; a blip is not), subtracted from the cores this
    process may use; at least 1. Used for the default thread count: on a 2-core machine beside
    one busy job, two threads make every op wait for the thread that shares its core with the
    other job (measured in BENCHMARKS.md), one thread does not.
    """
    import time

    busy = []
    for i in range(samples):
        n = _running_elsewhere()
        if n is None:
            return available_cores()
        busy.append(n)
        if i + 1 < samples:
            time.sleep(gap)
    return max(1, available_cores() - min(busy))


def default_threads() -> int | None:
    """Intra-op threads for a command that was not told (None: it was, by ``OMP_NUM_THREADS``,
    which torch honours itself)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return free_cores()


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
    import torch

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


def use_free_cores() -> None:
    """A command's start: intra-op threads for the cores free now (see :func:`free_cores`),
    unless ``OMP_NUM_THREADS`` set them."""
    threads = default_threads()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
