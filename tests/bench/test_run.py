"""`lenet bench --quick`: it runs end to end and reports every figure, sane and finite.

Speed itself is never asserted here (it lives in `lenet bench` and BENCHMARKS.md).
"""

from __future__ import annotations

import pytest

from tests.bench.conftest import positive

TOP_LEVEL = ("peak_gflops", "train_mflop_per_image", "epoch_speedup", "time_to_99_ratio",
             "best_train_fraction_of_peak", "best_images_per_s_batch1024",
             "best_latency_us_batch1")
TRAIN_ROWS = ("baseline_pipeline", "lenet_train", "lenet_train_autograd",
              "lenet_train_batch512_auto", "lenet5_fast")
TRAIN_KEYS = ("seconds_per_epoch", "images_per_s", "gflops", "fraction_of_peak")
TIME_KEYS = ("wall_seconds_mean", "wall_seconds_max", "test_accuracy_mean")


def test_every_figure_is_there_and_sane(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    for key in TOP_LEVEL:
        assert positive(r[key]), key
    assert r["best_train_fraction_of_peak"] < 1.5  # a fraction of a measured peak, not a typo
    for row in TRAIN_ROWS:
        for key in TRAIN_KEYS:
            assert positive(r["train"][row][key]), (row, key)
    for name in ("baseline_pipeline", "lenet5_fast"):
        t = r[f"time_to_99_{name}"]
        for key in TIME_KEYS:
            assert positive(t[key]), (name, key)
        assert 0 <= t["test_accuracy_mean"] <= 1
        # One seed: no spread to report (lenet.training.sweep.mean_std), not a std of 0.
        assert t["wall_seconds_std"] is None and t["test_accuracy_std"] is None
        assert len(t["runs"]) == 1 and t["reached"] in (0, 1)
    ratio = (r["time_to_99_baseline_pipeline"]["wall_seconds_mean"]
             / r["time_to_99_lenet5_fast"]["wall_seconds_mean"])
    assert r["time_to_99_ratio"] == pytest.approx(ratio)


def test_settings_are_recorded(quick: tuple[dict, str, str]) -> None:
    from lenet.bench import Settings

    r, _, _ = quick
    assert r["settings"] == {**Settings.quick().__dict__, "seeds": 1}
    assert r["command"] == "lenet bench --quick"
    after = r["machine"]["load_average_after"]
    assert after is None or len(after) == 3
