"""lenet.analysis.summary: per-layer shapes, parameters and connections, as `lenet summary`
prints them."""

from __future__ import annotations

from lenet.analysis.summary import format_summary, summarize, summary_dict
from lenet.models import create


def test_lenet5_layer_by_layer() -> None:
    d = summary_dict("lenet5")
    rows = {r["name"]: r for r in d["layers"]}
    assert list(rows) == ["c1", "s2", "c3", "s4", "c5", "f6", "output"]
    assert rows["c1"]["output_shape"] == [6, 28, 28]
    # 5x5 kernel + bias = 26 connections per output unit; a 2x2 max-pool reads 4 inputs.
    assert rows["c1"]["connections"] == 6 * 28 * 28 * 26 and rows["c1"]["params"] == 156
    assert rows["s2"]["connections"] == 6 * 14 * 14 * 4 and rows["s2"]["params"] == 0
    assert rows["output"]["connections"] == 10 * 85
    assert d["total_params"] == 61_706 == sum(r["params"] for r in d["layers"])
    text = format_summary(d)
    assert text.splitlines()[0] == "lenet5  input 1x28x28"
    assert text.splitlines()[-1].split() == ["total", "61,706", f"{d['total_connections']:,}"]


def test_a_layer_that_counts_itself_is_counted_whole_and_the_mode_restored() -> None:
    model = create("lenet5-1998").train()
    rows = summarize(model, 32)
    assert model.training
    # C3 is one row (its own count), not its parts; the RBF output counts 84 per class.
    assert [r.name for r in rows] == ["c1", "s2", "c3", "s4", "c5", "f6", "output"]
    assert next(r for r in rows if r.name == "output").connections == 840


def test_total_connections_is_the_tables_total() -> None:
    from lenet.analysis.summary import total_connections

    assert total_connections(create("lenet5"), 28) == summary_dict("lenet5")["total_connections"]
    # A linear classifier: 784 weights and a bias for each of 10 outputs.
    assert total_connections(create("linear"), 28) == 7_850
