"""`lenet paper --reading`: the three reading methods' table on the string benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lenet.errors import LenetError
from lenet.paper import reading


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> Path:
    """A data dir holding MNIST (linked) and nothing else: the benchmark is built there."""
    from lenet.data.datasets import dataset_dir

    folder = tmp_path_factory.mktemp("data")
    (folder / "mnist").symlink_to(dataset_dir("mnist"))
    return folder


def test_the_table_reads_each_part_with_each_method(data_dir: Path, tmp_path: Path):
    report = reading.run(["components", "segment"], parts=["5-wide", "5-paper"], limit=30,
                         digits="lenet5", data_dir=data_dir, run_dir=tmp_path / "out",
                         log=lambda s: None)
    rows = {m["method"]: m for m in report["methods"]}
    assert set(rows) == {"components", "segment"}
    for m in rows.values():
        assert m["digits"] == "lenet5" and set(m["parts"]) == {"5-wide", "5-paper"}
        for score in m["parts"].values():
            assert score["strings"] == 30 and 0.0 <= score["read"] <= score["accuracy"] + 0.01
    # well spaced digits read well either way; at the paper's spacing the over-segmentation
    # (which can cut touching digits apart) reads more than one digit per component does
    assert rows["components"]["parts"]["5-wide"]["accuracy"] >= 0.8
    assert rows["segment"]["parts"]["5-wide"]["accuracy"] >= 0.8
    assert rows["segment"]["parts"]["5-paper"]["accuracy"] > \
        rows["components"]["parts"]["5-paper"]["accuracy"]
    written = json.loads((tmp_path / "out" / "reading.json").read_text())
    assert written["methods"] == report["methods"]
    md = (tmp_path / "out" / "reading.md").read_text()
    assert md.startswith("| part | components (lenet5) | segment (lenet5) |")
    assert "| 5-paper |" in md and "first 30 strings" in md and "82 %" in md


def test_bad_methods_and_limits_are_refused(data_dir: Path, tmp_path: Path):
    with pytest.raises(LenetError, match="reading method 'ocr'"):
        reading.readers(["ocr"])
    with pytest.raises(LenetError, match="at least 1"):
        reading.run(["components"], limit=0, data_dir=data_dir, run_dir=tmp_path)


def test_a_missing_part_reads_as_a_dash():
    report = {"methods": [{"method": "sdnn", "parts": {"5-wide": {"accuracy": 1.0, "read": 0.9}}},
                          {"method": "components", "digits": "lenet5", "parts": {}}],
              "limit": None, "notes": ["sdnn: a note"]}
    md = reading.format_markdown(report)
    assert "| 5-wide | 100.0 % (90.0 %) | – |" in md and "- sdnn: a note" in md


def test_the_command(data_dir: Path, tmp_path: Path, capsys, monkeypatch):
    from lenet.cli import main

    monkeypatch.setenv("LENET_DATA_DIR", str(data_dir))
    built = reading.benchmark  # two parts are enough to see the command's wiring
    monkeypatch.setattr(reading, "benchmark", lambda d, parts: built(d, ["5-wide", "5-paper"]))
    code = main(["paper", "--reading", "--only", "components", "--test-subset", "5",
                 "--run-dir", str(tmp_path / "cmd")])
    out = capsys.readouterr().out
    assert code == 0 and "| 5-paper |" in out and "| part | components (" in out
    assert (tmp_path / "cmd" / "reading.md").is_file()


def test_docstring_examples_run():
    import doctest

    from lenet.paper import reading as MOD

    failures, tried = doctest.testmod(MOD, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0
