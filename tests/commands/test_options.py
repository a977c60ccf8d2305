"""The shared flag vocabulary: --run-dir for folders, --out for files, old spellings hidden."""

from __future__ import annotations

import argparse

import pytest

from lenet.commands import options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    options.add_run_dir(p, "a run folder", "--out-dir")
    options.add_out(p, "a file", "-o", "--output")
    options.add_device(p)
    return p


def test_old_spellings_still_parse_but_are_hidden() -> None:
    p = _parser()
    assert p.parse_args(["--out-dir", "runs/a", "-o", "x.onnx"]).run_dir == "runs/a"
    assert p.parse_args(["--output", "y.onnx"]).out == "y.onnx"
    text = p.format_help()
    assert "--run-dir" in text and "--out FILE" in text
    assert "--out-dir" not in text and "--output" not in text and "-o " not in text


def test_device_defaults_to_auto_and_rejects_unknown(capsys) -> None:
    p = _parser()
    assert p.parse_args([]).device == "auto"
    with pytest.raises(SystemExit):
        p.parse_args(["--device", "tpu"])
    assert "invalid choice" in capsys.readouterr().err
