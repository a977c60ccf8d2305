"""The CPU's name, vector extensions and the `--isa` caps (lenet.runtime.cpu)."""

from __future__ import annotations

import os

import pytest

from lenet.runtime.device import pick_precision


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    from lenet.runtime import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))


@pytest.mark.parametrize(("flags", "isa", "bf16"), [
    (("sse4_2",), "no AVX2", False),
    (("avx2", "fma"), "AVX2", False),
    (("avx2", "avx512f"), "AVX-512", False),
    (("avx2", "avx512f", "avx512_bf16"), "AVX-512 + BF16", True),
    (("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"), "AVX-512 + BF16 + AMX", True),
])
def test_cpu_isa_and_native_bf16(monkeypatch, flags, isa, bf16) -> None:
    from lenet.runtime import cpu

    _flags(monkeypatch, *flags)
    assert cpu.cpu_isa() == isa and cpu.cpu_has_bf16() is bf16


def test_cpu_family_and_model_come_from_the_first_processor(monkeypatch) -> None:
    from lenet.runtime import cpu

    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
            "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n")
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: text)
    assert cpu.cpu_family_model() == "family 26, model 2"
    assert cpu.cpu_name() == "AMD EPYC"
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: Apple M2\n")
    assert cpu.cpu_family_model() == ""


def test_this_machines_flags_are_read() -> None:
    from lenet.runtime import cpu

    if os.path.exists("/proc/cpuinfo"):
        assert cpu.cpu_flags() and cpu.cpu_isa() != ""


@pytest.mark.parametrize(("cap", "bf16", "amx"), [
    (None, True, True), ("ALL", True, True), ("avx2", False, False),
    ("AVX512_CORE", False, False), ("AVX512_CORE_BF16", True, False),
    ("AVX512_CORE_AMX", True, True), ("NOT_A_LEVEL", True, True),
])
def test_a_onednn_isa_cap_turns_native_bf16_off(monkeypatch, cap, bf16, amx) -> None:
    import torch

    from lenet.runtime import cpu

    _flags(monkeypatch, "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert cpu.cpu_has_bf16() is bf16 and cpu.cpu_has_amx() is amx
    expected = "bf16" if bf16 else "fp32"  # capped below native bf16, auto keeps fp32
    assert pick_precision("auto", torch.device("cpu"), 512)[0] == expected


def test_isa_caps_name_what_the_environment_turned_off(monkeypatch) -> None:
    from lenet.runtime import cpu

    for name in cpu.ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    assert cpu.isa_caps() == {}
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,-avx512f,-avx512bw")
    assert cpu.isa_caps() == {"DNNL_MAX_CPU_ISA": "AVX2", "NUMBA_CPU_FEATURES": "-avx512f"}
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx512f,-avx512fp16,-avx512bf16")
    assert cpu.isa_caps()["NUMBA_CPU_FEATURES"] == "-avx512bf16"  # not -avx512f(p16)
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+avx512f")
    assert cpu.isa_caps()["NUMBA_CPU_FEATURES"] == "set"
    assert cpu.cpu_has_bf16() is False  # DNNL_ is the same cap under its older name


def _has_avx2() -> bool:
    from lenet.runtime import cpu

    return "avx2" in cpu.cpu_flags()


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86 CPU with AVX2")
def test_the_avx2_caps_reach_torch_onednn_and_numba() -> None:
    """A process under isa_cap_environment("avx2") really runs torch's AVX2 kernels, sees no
    native bf16, and numba emits no AVX-512 (zmm) instruction."""
    import subprocess
    import sys

    from lenet.runtime import cpu

    env = {**os.environ, **cpu.isa_cap_environment("avx2")}
    code = ("import torch, importlib.util; from lenet.runtime import cpu\n"
            "print(torch.backends.cpu.get_cpu_capability(), cpu.cpu_has_bf16())\n"
            "if importlib.util.find_spec('numba'):\n"
            "    import numba, numpy as np\n"
            "    f = numba.njit(lambda a: (a * a).sum())\n"
            "    f(np.ones(256, np.float32))\n"
            "    print('zmm' in next(iter(f.inspect_asm().values())))\n"
            "else:\n"
            "    print(False)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["AVX2", "False", "False"]


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_a_cap_turns_off_in_numba_every_feature_above_it(monkeypatch, isa) -> None:
    from lenet.runtime import cpu

    pytest.importorskip("llvmlite")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    env = cpu.isa_cap_environment(isa)
    features = env["NUMBA_CPU_FEATURES"].split(",")
    on = {f[1:] for f in features if f.startswith("+")}
    assert on and not any(f.startswith(cpu._CAPS[isa].above) for f in on)
    if isa == "avx2":
        assert "avx512f" not in on and "avx512bf16" not in on
    assert env["ONEDNN_MAX_CPU_ISA"] == {"avx2": "AVX2", "avx512": "AVX512_CORE"}[isa]
