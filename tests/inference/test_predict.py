"""lenet.inference.predict: the network's side of `lenet predict` (the preprocessing is tested
in tests/inference/test_preprocess.py, whole files and folders in
tests/commands/test_predict.py)."""

from __future__ import annotations

import pytest


def test_onnx_graph_sizes_must_agree_with_its_metadata() -> None:
    from types import SimpleNamespace

    from lenet.inference.export import ExportError
    from lenet.inference.predict import _check_onnx_io

    def session(inp: list, out: list) -> SimpleNamespace:
        return SimpleNamespace(get_inputs=lambda: [SimpleNamespace(shape=inp)],
                               get_outputs=lambda: [SimpleNamespace(shape=out)])

    _check_onnx_io(session(["batch", 1, 28, 28], ["batch", 10]), 28, 10, "m.onnx")
    with pytest.raises(ExportError, match=r"m\.onnx: the graph's input is \(N, 1, 32, 32\) but "
                                          r"its lenet metadata says \(N, 1, 28, 28\)"):
        _check_onnx_io(session(["batch", 1, 32, 32], ["batch", 10]), 28, 10, "m.onnx")
    with pytest.raises(ExportError, match=r"output is \(N, 9\)"):
        _check_onnx_io(session(["batch", 1, 28, 28], ["batch", 9]), 28, 10, "m.onnx")
