"""The machine's description, its one /proc/cpuinfo reader, and the bench's timers."""

from __future__ import annotations

import sys

import pytest


def test_cpuinfo_is_read_once_for_the_name_and_the_bf16_flags(monkeypatch) -> None:
    import builtins

    from lenet.runtime import cpu

    reads = []
    real = builtins.open

    def counting(file, *a, **kw):
        reads.append(str(file))
        return real(file, *a, **kw)

    cpu._cpuinfo.cache_clear()
    monkeypatch.setattr(builtins, "open", counting)
    try:
        name, bf16 = cpu.cpu_name(), cpu.cpu_has_bf16()
        cpu.cpu_name(), cpu.cpu_isa()
    finally:
        cpu._cpuinfo.cache_clear()
    assert name and isinstance(bf16, bool)
    assert reads.count("/proc/cpuinfo") <= 1


def test_machine_names_this_cpu_and_torch() -> None:
    import torch

    from lenet.bench import hardware

    info = hardware.machine(torch.device("cpu"))
    assert info["cpu"] and info["threads"] >= 1 and info["torch"] == torch.__version__
    assert "gpu" not in info


def test_best_of_is_the_fastest_round() -> None:
    import torch

    from lenet.bench import hardware

    calls = []
    sec = hardware.best_of(lambda: calls.append(1), calls=4, rounds=3,
                           device=torch.device("cpu"), warmup=2)
    assert len(calls) == 2 + 4 * 3 and 0 <= sec < 1


def test_training_step_flops_and_peak_are_positive() -> None:
    import torch

    from lenet.bench import hardware

    assert hardware.train_step_flops("lenet5", 8) > 1e5
    assert hardware.matmul_peak_gflops(torch.device("cpu"), 64) > 0


def test_run_json_reads_the_last_object_and_a_failure_is_an_error() -> None:
    from lenet.bench import hardware
    from lenet.errors import LenetError

    r, wall = hardware.run_json([sys.executable, "-c", "print('noise'); print('{\"a\": 1}')"])
    assert r == {"a": 1} and wall > 0
    with pytest.raises(LenetError, match="benchmark child failed"):
        hardware.run_json([sys.executable, "-c", "import sys; sys.exit('boom')"])
