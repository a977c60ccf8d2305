"""`lenet train`'s rows of the bench: the large-batch row and the per-pattern SDLM step."""

from __future__ import annotations

import pytest

from tests.bench.conftest import positive


def test_large_batch_row_and_per_pattern_step(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    large = r["train"]["lenet_train_batch512_auto"]
    assert large["batch_size"] == 512 and 0 <= large["test_accuracy"] <= 1
    p = r["per_pattern"]
    for key in ("autograd_us", "hand_written_us", "speedup", "pass_seconds"):
        assert positive(p[key]), key
    assert p["speedup"] == pytest.approx(p["autograd_us"] / p["hand_written_us"])


def test_lenet_train_rows_match_the_baselines_batch(quick: tuple[dict, str, str]) -> None:
    from lenet.bench.baseline import TRAIN_BATCH

    r, _, _ = quick
    ours = r["train"]["lenet_train"]
    assert ours["batch_size"] == TRAIN_BATCH and ours["epochs"] == 2
    assert ours["first_epoch_seconds"] > 0
