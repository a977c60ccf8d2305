"""Device choice and the CPU-core arithmetic shared by `--nproc`, sweeps and ONNX Runtime."""

from __future__ import annotations

import os

import pytest

from lenet.device import available_cores, pick, threads_per_job
from lenet.errors import ConfigError


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
