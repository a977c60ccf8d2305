"""lenet.inference.predict: the network's side of `lenet predict` (the preprocessing is tested
in tests/inference/test_preprocess.py, whole files and folders in
tests/commands/test_predict.py)."""

from __future__ import annotations

import numpy as np
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


# --------------------------------------------------------------------------- what it takes
# Every input form against the file's answer, and every refusal of issue 32, are in
# tests/reliability/test_api_inputs.py; here, what comes back for what.

@pytest.fixture(scope="module")
def reader():
    from lenet.inference.predict import Predictor

    return Predictor.load("lenet5")


def _stroke() -> np.ndarray:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:15] = 255
    return digit


def test_one_image_gives_a_prediction_and_a_batch_a_list(reader) -> None:
    import torch

    from lenet.inference.predict import Prediction

    one = _stroke()
    assert isinstance(reader(one), Prediction)
    assert isinstance(reader(torch.from_numpy(one)[None]), Prediction)  # tensor (C, H, W)
    for batch, n in ((one[None], 1), (np.stack([one] * 3), 3), ([one, one], 2),
                     (torch.from_numpy(one)[None, None], 1)):
        answers = reader(batch)
        assert isinstance(answers, list) and len(answers) == n
        assert all(a.label == "1" for a in answers)
    assert reader([]) == [] and reader.scores([]).shape == (0, 10)
    assert reader.predict(one)[0] == reader(one)
    assert reader.scores(one).shape == (1, 10) and reader.scores(one).dtype == np.float32


def test_predict_image_takes_one_image_only(reader) -> None:
    from lenet.inference.predict import InputError

    assert reader.predict_image(_stroke()).label == "1"
    with pytest.raises(InputError, match="predict_image takes one image, not a batch of 2"):
        reader.predict_image(np.stack([_stroke()] * 2))
    with pytest.raises(InputError, match="item 1: a batch of 2 inside a list"):
        reader([_stroke(), np.stack([_stroke()] * 2)])


def test_a_huge_batch_goes_through_the_network_in_chunks(reader, monkeypatch) -> None:
    import lenet.inference.predict as predict

    seen: list[int] = []
    chunk = reader._scores_chunk
    monkeypatch.setattr(predict, "CHUNK", 4)
    monkeypatch.setattr(reader, "_scores_chunk", lambda d: seen.append(len(d)) or chunk(d))
    scores = reader.scores(np.stack([_stroke()] * 10))
    assert seen == [4, 4, 2] and scores.shape == (10, 10)

