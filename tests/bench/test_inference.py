"""The inference rows of the bench and how the best ones are picked."""

from __future__ import annotations

from tests.bench.conftest import positive


def test_inference_rows_and_bests(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    rows = r["inference"]
    assert {"eager", "channels_last", "jit_frozen"} <= set(rows)
    assert "onnxruntime_1thread_iobinding" in rows  # onnxruntime is in the dev extras
    for name, row in rows.items():
        assert positive(row["latency_us_batch1"]), name
        assert positive(row["images_per_s_batch1024"]), name
    assert r["best_latency_us_batch1"] == min(v["latency_us_batch1"] for v in rows.values())
    assert r["best_images_per_s_batch1024"] == max(
        v["images_per_s_batch1024"] for v in rows.values())
    assert r["best_latency_backend"] in rows and r["best_throughput_backend"] in rows
    assert r["machine"]["threads"] >= 1 and r["machine"]["cpu"]


def test_bests_pick_the_fastest_and_the_best_torch_path() -> None:
    from lenet.bench.inference import bests

    rows = {"eager": {"latency_us_batch1": 50.0, "images_per_s_batch1024": 1e5},
            "jit_frozen": {"latency_us_batch1": 40.0, "images_per_s_batch1024": 2e5},
            "onnxruntime": {"latency_us_batch1": 30.0, "images_per_s_batch1024": 3e5}}
    assert bests(rows) == {"best_latency_us_batch1": 30.0, "best_latency_backend": "onnxruntime",
                           "best_images_per_s_batch1024": 3e5,
                           "best_throughput_backend": "onnxruntime",
                           "best_torch_path": "jit_frozen"}
