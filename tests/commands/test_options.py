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


def test_device_defaults_to_auto_and_takes_any_torch_device_string() -> None:
    # Whether this machine has the device is lenet.runtime.device.pick's question
    # (tests/runtime/test_device.py); the parser asks only whether torch knows the name.
    p = _parser()
    assert p.parse_args([]).device == "auto"
    for name in ("cpu", "cuda", "cuda:1", "mps", "xpu", "xpu:0", "privateuseone", "meta"):
        assert p.parse_args(["--device", name]).device == name


@pytest.mark.parametrize("bad", ["CUDA", "cuda:", "cuda:x", "gpu 0", "tpu"])
def test_device_rejects_what_is_no_device_string(bad: str, capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--device", bad])
    err = capsys.readouterr().err
    assert f"argument --device: {bad!r} is not a device: expected auto or a torch device" in err


def test_device_strings_are_checked_as_torch_parses_them() -> None:
    for good in ("auto", "cpu", "cuda", "cuda:1", "mps", "xpu", "xpu:2", "privateuseone"):
        assert options.is_device_form(good), good
    for bad in ("", "CUDA", "cuda:", "cuda:x", "cuda 1", ":0", "cuda:0:1", "tpu", "auto:0"):
        assert not options.is_device_form(bad), bad
