"""`lenet data`, as a user runs it."""

import json

import pytest

from tests.commands.cli import lenet


def test_data_info_reports_counts_and_checksums(mnist_ready) -> None:
    (info,) = json.loads(lenet("data", "info", "mnist", "--json").stdout)
    assert info["samples"] == {"train": 60_000, "test": 10_000}
    assert set(info["files"].values()) == {"ok"}
    assert sum(info["label_histogram"]["test"].values()) == 10_000
    text = lenet("data", "info", "mnist").stdout
    assert "t10k-images-idx3-ubyte" in text and "60,000" in text


@pytest.mark.parametrize("command", ["fetch", "info"])
def test_verify_rehashes_every_file(command, mnist_ready, monkeypatch, capsys) -> None:
    from lenet.cli import main
    from lenet.data import sources

    hashed: list[str] = []
    real = sources.sha256_file
    monkeypatch.setattr(sources, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    assert main(["data", command, "mnist"]) == 0
    assert sorted(hashed) == ["t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"]  # small
    hashed.clear()
    assert main(["data", command, "mnist", "--verify"]) == 0
    assert sorted(hashed) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                              "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    out = capsys.readouterr().out
    assert "verified files in" in out if command == "fetch" else "60,000" in out
