"""The CPU this process runs on: /proc/cpuinfo's name, family and flags, the vector extensions
that decide speed (AVX2, AVX-512, BF16, AMX), and the ``--isa`` caps that make torch, oneDNN,
MKL and numba use less of it than it has."""

from __future__ import annotations

import functools
import os
import platform
from typing import NamedTuple

from lenet.errors import ConfigError


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
        import llvmlite.binding as llvm  # noqa: PLC0415  (extra: numba)
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
