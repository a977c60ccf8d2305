"""`lenet train`'s rows of the bench: the large-batch row and the per-pattern SDLM step."""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench.conftest import positive


def test_large_batch_row_and_per_pattern_step(quick: tuple[dict, str, str]) -> None:
    r, _, _ = quick
    large = r["train"]["lenet_train_batch512_auto"]
    assert large["batch_size"] == 512 and 0 <= large["test_accuracy"] <= 1
    p = r["per_pattern"]
    for key in ("autograd_us", "hand_written_us", "speedup", "pass_seconds", "curvature_seconds"):
        assert positive(p[key]), key
    assert p["speedup"] == pytest.approx(p["autograd_us"] / p["hand_written_us"])


def test_lenet_train_rows_match_the_baselines_batch(quick: tuple[dict, str, str]) -> None:
    from lenet.bench.baseline import TRAIN_BATCH

    r, _, _ = quick
    ours, autograd = r["train"]["lenet_train"], r["train"]["lenet_train_autograd"]
    assert ours["batch_size"] == autograd["batch_size"] == TRAIN_BATCH and ours["epochs"] == 2
    assert ours["first_epoch_seconds"] > 0
    # The same recipe twice, side by side: the compiled step (where numba is installed, as in
    # `all`) and autograd's, which `step: torch` asks for in its own row only.
    assert autograd["compiled_step"] is False
    assert ours["compiled_step"] is (importlib.util.find_spec("numba") is not None)


def test_compiled_step_and_busy_core_rows(quick: tuple[dict, str, str]) -> None:
    r, _, md = quick
    p = r["per_pattern"]
    if "compiled_us" in p:  # numba installed (lenet[fast], in `all`)
        assert positive(p["compiled_us"]) and positive(p["compiled_chunked_us"])
        assert p["pass_seconds"] == pytest.approx(
            60_000 * p["compiled_chunked_us"] / 1e6 + p["curvature_seconds"])
        assert "compiled (numba)" in md
    b = r["busy_core"]
    for key in ("quiet_default", "busy_default", "busy_every_core"):
        assert positive(b[key]["seconds_per_epoch"]) and b[key]["threads"] >= 1, key
    # Beside one busy core, lenet's default leaves that core alone where there is another.
    from lenet.runtime.threads import available_cores

    if available_cores() >= 2:
        assert b["busy_default"]["threads"] < b["busy_every_core"]["threads"]
    assert b["busy_every_core"]["threads"] == available_cores()
    assert "an epoch beside one busy core" in md
