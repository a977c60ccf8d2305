"""`lenet bench --quick`: it runs end to end and reports every figure, sane and finite.

Speed itself is never asserted here (it lives in `lenet bench` and BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

TOP_LEVEL = ("peak_gflops", "train_mflop_per_image", "epoch_speedup", "time_to_99_ratio",
             "best_train_fraction_of_peak", "best_images_per_s_batch1024",
             "best_latency_us_batch1")
TRAIN_ROWS = ("seeds_pipeline", "lenet_train", "lenet_train_batch512_bf16", "lenet5_fast")
TRAIN_KEYS = ("seconds_per_epoch", "images_per_s", "gflops", "fraction_of_peak")
TIME_KEYS = ("wall_seconds_mean", "wall_seconds_max", "test_accuracy_mean")


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> tuple[dict, str, str]:
    from lenet import bench

    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = parser.parse_args(["bench", "--quick", "--seeds", "1", "--json", "--out", str(out)])
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert args.handler(args) == 0
    return json.loads(buf.getvalue()), out.read_text(), out.with_suffix(".md").read_text()


def test_every_figure_is_there_and_sane(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    for key in TOP_LEVEL:
        assert _positive(r[key]), key
    assert r["best_train_fraction_of_peak"] < 1.5  # a fraction of a measured peak, not a typo
    for row in TRAIN_ROWS:
        for key in TRAIN_KEYS:
            assert _positive(r["train"][row][key]), (row, key)
    for name in ("seeds_pipeline", "lenet5_fast"):
        t = r[f"time_to_99_{name}"]
        for key in TIME_KEYS:
            assert _positive(t[key]), (name, key)
        assert 0 <= t["test_accuracy_mean"] <= 1
        assert t["wall_seconds_std"] >= 0
        assert len(t["runs"]) == 1 and t["reached"] in (0, 1)
    large = r["train"]["lenet_train_batch512_bf16"]
    assert large["batch_size"] == 512 and 0 <= large["test_accuracy"] <= 1
    p = r["per_pattern"]
    for key in ("autograd_us", "hand_written_us", "speedup", "pass_seconds"):
        assert _positive(p[key]), key
    assert p["speedup"] == pytest.approx(p["autograd_us"] / p["hand_written_us"])
    ratio = (r["time_to_99_seeds_pipeline"]["wall_seconds_mean"]
             / r["time_to_99_lenet5_fast"]["wall_seconds_mean"])
    assert r["time_to_99_ratio"] == pytest.approx(ratio)


def test_inference_rows_and_bests(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    rows = r["inference"]
    assert {"eager", "channels_last", "jit_frozen"} <= set(rows)
    assert "onnxruntime_1thread_iobinding" in rows  # onnxruntime is in the dev extras
    for name, row in rows.items():
        assert _positive(row["latency_us_batch1"]), name
        assert _positive(row["images_per_s_batch1024"]), name
    assert r["best_latency_us_batch1"] == min(v["latency_us_batch1"] for v in rows.values())
    assert r["best_images_per_s_batch1024"] == max(
        v["images_per_s_batch1024"] for v in rows.values())
    assert r["best_latency_backend"] in rows and r["best_throughput_backend"] in rows
    assert r["machine"]["threads"] >= 1 and r["machine"]["cpu"]


def test_files_written(quick: tuple[dict, str, str]) -> None:
    r, text, md = quick
    assert json.loads(text) == r
    assert "time-to-99 ratio" in md and "| what | value |" in md and "hand-written" in md
    for name in r["inference"]:
        assert name in md


def test_seeds_model_is_the_seeds_code_not_ours() -> None:
    """The seeds' side must not inherit lenet5's training-time tuning: its own module, conv ->
    ReLU -> pool, with lenet5's exact parameter shapes."""
    import torch

    from lenet import bench
    from lenet.models import create

    seeds, ours = bench._seeds_model(), create("lenet5")
    assert type(seeds).__module__ == "lenet.bench"
    assert [p.shape for p in seeds.parameters()] == [p.shape for p in ours.parameters()]
    seeds.load_state_dict(ours.state_dict())
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(seeds.eval()(x), ours.eval()(x))


def test_seeds_dataset_gives_torchvisions_normalized_digits() -> None:
    """The seeds' per-sample pipeline (PIL image, ToTensor, Normalize((0.5,), (0.5,))) yields
    exactly (pixel / 255 - 0.5) / 0.5 as a (1, 28, 28) float32 tensor and an int label, and
    a black and a white pixel land on -1 and 1."""
    import torch

    from lenet import bench

    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = torch.tensor([7, 0, 3])
    ds = bench._pil_dataset(images, labels)
    assert len(ds) == 3
    for i in range(3):
        x, y = ds[i]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert type(y) is int and y == int(labels[i])
        torch.testing.assert_close(x[0], (images[i].float() / 255 - 0.5) / 0.5)
    x, _ = ds[0]
    assert x[0, 0, 0] == -1.0 and x[0, 0, 1] == 1.0
