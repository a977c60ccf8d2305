"""This machine: its practical fp32 peak, the FLOPs of a training step, what it is, and the
timers every figure of `lenet bench` is measured with."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lenet.errors import LenetError
from lenet.models import create, get_spec
from lenet.runtime import jobs
from lenet.runtime.cpu import cpu_family_model, cpu_isa, cpu_name, isa_caps

ROUNDS = 5  # timed rounds per figure; the fastest is reported, as timeit does


# --------------------------------------------------------------------------- timers
def _timer(device: Any) -> Callable[[Callable[[], Any], int], float]:
    """Seconds per call of fn: perf_counter on a CPU, CUDA events on a GPU."""
    if device.type == "cuda":
        def cuda_time(fn: Callable[[], Any], n: int) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / n
        return cuda_time

    def cpu_time(fn: Callable[[], Any], n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    return cpu_time


def best_of(fn: Callable[[], Any], calls: int, rounds: int, device: Any, warmup: int = 3
            ) -> float:
    """The fastest round's seconds per call (the least disturbed by other processes)."""
    for _ in range(warmup):
        fn()
    timer = _timer(device)
    return min(timer(fn, calls) for _ in range(rounds))


def run_json(cmd: list[str], env: dict[str, str] | None = None
             ) -> tuple[dict[str, Any], float]:
    """Run a child process that ends its output with one JSON object: the object, and the
    child's wall seconds (a whole process: interpreter start and data load included)."""
    done = jobs.run(cmd, env=env, capture=True)
    if done.returncode != 0:
        raise LenetError(f"benchmark child failed ({' '.join(cmd[:4])} ...):\n{done.stderr}")
    out = done.stdout
    return json.loads(out[out.index("{"):]), done.seconds  # the JSON object ends the output


# --------------------------------------------------------------------------- peak and FLOPs
def matmul_peak_gflops(device: Any, size: int = 2048) -> float:
    """fp32 GFLOP/s of a large square matrix multiply: this machine's practical peak."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    calls = 5 if device.type == "cpu" else 50
    sec = best_of(lambda: torch.mm(a, b, out=out), calls, ROUNDS, device)
    return 2 * size**3 / sec / 1e9


def train_step_flops(model_name: str, batch: int) -> float:
    """FLOPs of one training step (forward, loss, backward) per image, counted by torch."""
    spec = get_spec(model_name)
    model = create(model_name)
    side = spec.preprocessing.input_size
    x, y = torch.randn(batch, 1, side, side), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


# --------------------------------------------------------------------------- the machine
def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine(device: Any) -> dict[str, Any]:
    info = {"cpu": cpu_name(), "cpu_model": cpu_family_model(), "isa": cpu_isa(),
            "isa_caps": isa_caps(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "load_average": load_average()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
