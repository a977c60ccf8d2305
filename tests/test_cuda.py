"""CUDA paths, run where a GPU exists. CI and this project's build machine have none, so here
every test skips; on a GPU machine `make test` runs them with the rest."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train_on_gpu(tmp_path, **overrides):
    from lenet.config import resolve
    from lenet.training.loop import fit as train

    cfg = resolve("lenet5-fast", {"device": "cuda", "train_subset": 10_000, "test_subset": 2000,
                                  "tensorboard": False, "run_dir": str(tmp_path / "run"),
                                  **overrides})
    return train(cfg, log=lambda s: None, progress=False)


def test_training_on_the_gpu_learns_and_its_weights_evaluate_on_either_device(
        tmp_path, mnist_ready) -> None:
    from lenet.analysis.evaluate import evaluate_weights

    r = _train_on_gpu(tmp_path)
    assert r.test.accuracy > 0.95
    assert r.history[0].images_per_s > 0
    for device in ("cuda", "cpu"):
        again = evaluate_weights(r.run_dir, device=device, test_subset=2000)
        # Same weights, same batches; the two devices may round a borderline digit apart.
        assert abs(again["accuracy"] - r.test.accuracy) <= 1 / 2000, device


def test_bf16_training_on_the_gpu_learns(tmp_path, mnist_ready) -> None:
    r = _train_on_gpu(tmp_path, bf16=True)
    assert r.test.accuracy > 0.95


def test_bench_on_the_gpu_names_it_and_times_with_cuda_events(mnist_ready) -> None:
    from lenet import bench

    r = bench.run(bench.Settings.quick(), "cuda", log=lambda s: None)
    assert r["machine"]["gpu"] == torch.cuda.get_device_name()
    assert r["best_latency_us_batch1"] > 0 and r["best_images_per_s_batch1024"] > 0
    assert 0 < r["best_train_fraction_of_peak"] < 1.5
