"""The bench's Markdown table and its JSON: every row there, no ± without a spread, no NaN."""

from __future__ import annotations

import copy
import json
import math


def test_files_written(quick: tuple[dict, str, str]) -> None:
    r, text, md = quick
    assert json.loads(text) == r
    assert "time-to-99 ratio" in md and "| what | value |" in md and "hand-written" in md
    for name in r["inference"]:
        assert name in md


def test_baseline_is_labelled_baseline(quick: tuple[dict, str, str]) -> None:
    _, _, md = quick
    assert "baseline (tutorials' PIL DataLoader pipeline" in md
    assert "seeds'" not in md


def test_a_single_run_shows_no_spread_and_two_do(quick: tuple[dict, str, str]) -> None:
    from lenet.bench import markdown

    r, _, md = quick
    time_rows = [line for line in md.splitlines() if line.startswith("| time to ")]
    assert len(time_rows) == 2 and not any("±" in line for line in time_rows)
    spread = copy.deepcopy(r)
    spread["time_to_99_lenet5_fast"].update(wall_seconds_std=0.25, test_accuracy_std=0.001)
    rows = [line for line in markdown(spread).splitlines() if "lenet5-fast`, whole" in line]
    assert len(rows) == 1 and " ± 0.25 s" in rows[0] and " ± 0.0010;" in rows[0]


def test_finite_turns_nan_and_infinity_into_null() -> None:
    from lenet.bench import finite

    doc = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "x", "e": 2}
    assert finite(doc) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x", "e": 2}
    json.dumps(finite(doc), allow_nan=False)


def test_the_header_names_the_isa_caps_a_run_was_made_under(quick: tuple[dict, str, str]) -> None:
    from lenet.bench import markdown

    r, _, md = quick
    assert "capped by" not in md.splitlines()[0] or r["machine"]["isa_caps"]
    capped = copy.deepcopy(r)
    capped["machine"].update(isa="AVX-512 + BF16", cpu_model="family 26, model 2",
                             isa_caps={"ONEDNN_MAX_CPU_ISA": "AVX2", "NUMBA_CPU_NAME": "haswell"})
    first = markdown(capped).splitlines()[0]
    assert ("(family 26, model 2; AVX-512 + BF16) capped by ONEDNN_MAX_CPU_ISA=AVX2, "
            "NUMBA_CPU_NAME=haswell") in first
