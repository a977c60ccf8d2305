"""Device choice (`--device`) and the precision a run uses on it."""

from __future__ import annotations

import pytest

from lenet.errors import ConfigError
from lenet.runtime.device import available, pick


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


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    from lenet.runtime import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))


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
