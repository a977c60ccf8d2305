"""Device choice and the CPU-core arithmetic shared by `--nproc`, sweeps and ONNX Runtime."""

from __future__ import annotations

import os

import pytest

from lenet.errors import ConfigError
from lenet.runtime.device import available, available_cores, is_device_form, pick, threads_per_job


def test_available_cores_follows_the_affinity_mask() -> None:
    cores = available_cores()
    assert cores >= 1
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


def test_threads_per_job_shares_the_cores_and_never_drops_to_zero() -> None:
    cores = available_cores()
    assert threads_per_job(1) == cores
    assert threads_per_job(2) == max(1, cores // 2)
    assert threads_per_job(10 * cores) == 1


def test_pick_cpu_and_bad_names() -> None:
    assert pick("cpu").type == "cpu"
    assert pick("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        pick("tpu")


def test_pick_cuda_without_a_gpu_says_so() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        pick("cuda")


def test_torch_device_strings_are_accepted_as_written() -> None:
    assert pick("cpu:0").type == "cpu"
    assert available()[0] == "cpu"
    for good in ("auto", "cpu", "cuda", "cuda:1", "mps", "xpu", "xpu:2", "privateuseone"):
        assert is_device_form(good), good
    for bad in ("", "CUDA", "cuda:", "cuda:x", "cuda 1", ":0", "cuda:0:1", "tpu", "auto:0"):
        assert not is_device_form(bad), bad


def test_auto_is_the_accelerator_torch_reports() -> None:
    import torch

    device = pick("auto")
    if hasattr(torch, "accelerator"):
        current = torch.accelerator.current_accelerator()
        expected = current.type if current is not None and torch.accelerator.is_available() \
            else "cpu"
        assert device.type == expected
    else:
        assert device.type in ("cpu", "cuda", "mps")


def test_auto_without_torch_accelerator_asks_cuda_then_mps(monkeypatch) -> None:
    import torch

    monkeypatch.delattr(torch, "accelerator", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick("auto").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick("auto").type == "cuda"


@pytest.mark.parametrize("name", ["cuda:1", "xpu", "xpu:0", "mps", "meta"])
def test_a_device_this_machine_lacks_is_one_line_naming_what_it_has(name: str) -> None:
    kind = name.partition(":")[0]
    here = available()
    if any(d == name or d.startswith(f"{name}:") for d in here):
        pytest.skip(f"this machine has {name}")
    if name == "cuda:1" and "cuda:0" in here:
        pytest.skip("this machine has one CUDA GPU (tested below with a fake count)")
    with pytest.raises(ConfigError) as e:
        pick(name)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"--device {name}: ")
    assert f"available here: {', '.join(here)}" in message
    assert kind in message


def test_a_device_index_past_the_count_names_the_indices(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick("cuda:1") == torch.device("cuda", 1)
    assert available()[:3] == ["cpu", "cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match=r"--device cuda:2: only 2 cuda devices visible "
                                          r"\(index 0 to 1\); available here: cpu, cuda:0, cuda:1"):
        pick("cuda:2")


def test_a_backend_whose_probe_fails_counts_as_absent(monkeypatch) -> None:
    import torch

    def broken() -> bool:
        raise RuntimeError("driver trouble")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    assert "cuda:0" not in available()
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        pick("cuda")


# --------------------------------------------------------------------------- CPU kind, threads
def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    from lenet.runtime import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(flags))


@pytest.mark.parametrize(("flags", "isa", "bf16"), [
    (("sse4_2",), "no AVX2", False),
    (("avx2", "fma"), "AVX2", False),
    (("avx2", "avx512f"), "AVX-512", False),
    (("avx2", "avx512f", "avx512_bf16"), "AVX-512 + BF16", True),
    (("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"), "AVX-512 + BF16 + AMX", True),
])
def test_cpu_isa_and_native_bf16(monkeypatch, flags, isa, bf16) -> None:
    from lenet.runtime import device

    _flags(monkeypatch, *flags)
    assert device.cpu_isa() == isa and device.cpu_has_bf16() is bf16


def test_cpu_family_and_model_come_from_the_first_processor(monkeypatch) -> None:
    from lenet.runtime import device

    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
            "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n")
    monkeypatch.setattr(device, "_cpuinfo", lambda: text)
    assert device.cpu_family_model() == "family 26, model 2"
    assert device.cpu_name() == "AMD EPYC"
    monkeypatch.setattr(device, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: Apple M2\n")
    assert device.cpu_family_model() == ""


def test_this_machines_flags_are_read() -> None:
    from lenet.runtime import device

    if os.path.exists("/proc/cpuinfo"):
        assert device.cpu_flags() and device.cpu_isa() != ""


def test_precision_auto_never_picks_emulated_bf16(monkeypatch) -> None:
    import torch

    from lenet.runtime import device

    cpu = torch.device("cpu")
    _flags(monkeypatch, "avx2")
    assert device.pick_precision("auto", cpu, 4096) == ("fp32", None)
    precision, note = device.pick_precision("bf16", cpu, 64)
    assert precision == "bf16" and "emulated, several times slower than fp32" in note
    assert "AVX2" in note
    _flags(monkeypatch, "avx512f", "avx512_bf16")
    assert device.pick_precision("auto", cpu, 64) == ("fp32", None)  # small batches: fp32
    assert device.pick_precision("auto", cpu, device.AUTO_BF16_MIN_BATCH) == ("bf16", None)
    assert device.pick_precision("bf16", cpu, 64) == ("bf16", None)
    assert device.pick_precision("fp32", cpu, 512) == ("fp32", None)
    # Where lenet's compiled fp32 step runs, it beat torch's bf16 without AMX; with AMX not.
    assert device.pick_precision("auto", cpu, 512, compiled_fp32=True) == ("fp32", None)
    _flags(monkeypatch, "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    assert device.pick_precision("auto", cpu, 512, compiled_fp32=True) == ("bf16", None)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        device.pick_precision("fp16", cpu, 64)


@pytest.mark.parametrize(("cap", "bf16", "amx"), [
    (None, True, True), ("ALL", True, True), ("avx2", False, False),
    ("AVX512_CORE", False, False), ("AVX512_CORE_BF16", True, False),
    ("AVX512_CORE_AMX", True, True), ("NOT_A_LEVEL", True, True),
])
def test_a_onednn_isa_cap_turns_native_bf16_off(monkeypatch, cap, bf16, amx) -> None:
    import torch

    from lenet.runtime import device

    _flags(monkeypatch, "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert device.cpu_has_bf16() is bf16 and device.cpu_has_amx() is amx
    expected = "bf16" if bf16 else "fp32"  # capped below native bf16, auto keeps fp32
    assert device.pick_precision("auto", torch.device("cpu"), 512)[0] == expected


def test_isa_caps_name_what_the_environment_turned_off(monkeypatch) -> None:
    from lenet.runtime import device

    for name in device.ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    assert device.isa_caps() == {}
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,-avx512f,-avx512bw")
    assert device.isa_caps() == {"DNNL_MAX_CPU_ISA": "AVX2", "NUMBA_CPU_FEATURES": "-avx512f"}
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx512f,-avx512fp16,-avx512bf16")
    assert device.isa_caps()["NUMBA_CPU_FEATURES"] == "-avx512bf16"  # not -avx512f(p16)
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+avx512f")
    assert device.isa_caps()["NUMBA_CPU_FEATURES"] == "set"
    assert device.cpu_has_bf16() is False  # DNNL_ is the same cap under its older name


def test_free_cores_leaves_the_busy_ones(monkeypatch) -> None:
    from lenet.runtime import device

    monkeypatch.setattr(device, "available_cores", lambda: 4)
    monkeypatch.setattr(device, "_running_elsewhere", iter([1, 3, 1, 2, 1]).__next__)
    assert device.free_cores(gap=0) == 3  # the job in every sample counts; the blips do not
    monkeypatch.setattr(device, "_running_elsewhere", lambda: 9)
    assert device.free_cores(gap=0) == 1  # never zero
    monkeypatch.setattr(device, "_running_elsewhere", lambda: None)  # no /proc/loadavg
    assert device.free_cores(gap=0) == 4


def test_omp_num_threads_wins_over_the_free_cores(monkeypatch) -> None:
    from lenet.runtime import device

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert device.default_threads() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(device, "free_cores", lambda: 2)
    assert device.default_threads() == 2


def _has_avx2() -> bool:
    from lenet.runtime import device

    return "avx2" in device.cpu_flags()


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86 CPU with AVX2")
def test_the_avx2_caps_reach_torch_onednn_and_numba() -> None:
    """A process under isa_cap_environment("avx2") really runs torch's AVX2 kernels, sees no
    native bf16, and numba emits no AVX-512 (zmm) instruction."""
    import subprocess
    import sys

    from lenet.runtime import device

    env = {**os.environ, **device.isa_cap_environment("avx2")}
    code = ("import torch, importlib.util; from lenet.runtime import device\n"
            "print(torch.backends.cpu.get_cpu_capability(), device.cpu_has_bf16())\n"
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
    from lenet.runtime import device

    pytest.importorskip("llvmlite")
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    env = device.isa_cap_environment(isa)
    features = env["NUMBA_CPU_FEATURES"].split(",")
    on = {f[1:] for f in features if f.startswith("+")}
    assert on and not any(f.startswith(device._CAPS[isa].above) for f in on)
    if isa == "avx2":
        assert "avx512f" not in on and "avx512bf16" not in on
    assert env["ONEDNN_MAX_CPU_ISA"] == {"avx2": "AVX2", "avx512": "AVX512_CORE"}[isa]
