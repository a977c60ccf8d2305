"""`lenet data`, as a user runs it."""

import json

from tests.commands.cli import lenet


def test_data_info_reports_counts_and_checksums(mnist_ready) -> None:
    (info,) = json.loads(lenet("data", "info", "mnist", "--json").stdout)
    assert info["samples"] == {"train": 60_000, "test": 10_000}
    assert set(info["files"].values()) == {"ok"}
    assert sum(info["label_histogram"]["test"].values()) == 10_000
    text = lenet("data", "info", "mnist").stdout
    assert "t10k-images-idx3-ubyte" in text and "60,000" in text
