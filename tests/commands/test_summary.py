"""`lenet summary`, as a user runs it."""

import json

from tests.commands.cli import lenet


def test_summary_counts_connections() -> None:
    d = json.loads(lenet("summary", "lenet5", "--json").stdout)
    c1 = d["layers"][0]
    assert c1["output_shape"] == [6, 28, 28]
    assert c1["params"] == 156 and c1["connections"] == 122_304
    assert d["total_params"] == 61_706
