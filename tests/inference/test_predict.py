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



# --------------------------------------------------------------------------- unsure, no digit
def test_blank_images_are_no_digit_and_non_images_still_errors(reader, tmp_path) -> None:
    import io

    from PIL import Image

    from lenet.inference.decoding import NotAnImageError
    from lenet.inference.files import predict_files
    from lenet.inference.predict import InputTypeError, Prediction

    buf = io.BytesIO()
    Image.new("RGB", (60, 80), (240, 235, 230)).save(buf, format="PNG")  # paper, no ink
    for blank in (buf.getvalue(), Image.open(io.BytesIO(buf.getvalue())),
                  np.zeros((28, 28), np.uint8), np.full((50, 40), 255, np.uint8)):
        p = reader(blank)
        assert p.no_digit and p.label is None and p.index == -1 and not p.unsure
        assert str(p) == "no digit" and p.to_dict()["digit"] is None
    answers = reader([np.zeros((28, 28), np.uint8), _stroke()])
    assert [a.label for a in answers] == [None, "1"]
    assert reader(_stroke()).to_dict() == {"digit": 1, "label": "1", "confidence":
                                           reader(_stroke()).confidence, "unsure": False,
                                           "no_digit": False}
    (tmp_path / "blank.png").write_bytes(buf.getvalue())
    (tmp_path / "words.txt").write_text("not an image")
    rows = predict_files(reader, [str(tmp_path / "blank.png"), str(tmp_path / "words.txt")])
    assert rows[0]["no_digit"] and rows[0]["label"] is None and rows[0]["top_k"] == []
    assert "not an image" in rows[1]["error"]
    with pytest.raises(NotAnImageError):
        reader(b"not an image at all")
    with pytest.raises(InputTypeError):
        reader(3.5)
    assert isinstance(reader(_stroke()), Prediction)


def test_unsure_is_a_margin_at_most_the_weights_reject_margin(reader) -> None:
    from dataclasses import replace

    digits = np.stack([_stroke(), np.roll(_stroke(), 6, axis=1), _stroke().T])
    top2 = np.sort(reader.scores(digits), axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert reader.reject_margin is None and not any(p.unsure for p in reader(digits))
    cut = float(np.median(margin))
    strict = replace(reader, reject_margin=cut)
    flags = [p.unsure for p in strict(digits)]
    assert flags == [bool(m <= cut) for m in margin] and any(flags) and not all(flags)
    unsure = next(p for p in strict(digits) if p.unsure)
    assert str(unsure) == f"{unsure.label} (unsure)" and unsure.to_dict()["unsure"] is True


def test_the_default_weights_are_lenet5_real_with_their_reject_margin() -> None:
    import lenet
    from lenet.inference.predict import Predictor
    from lenet.models.hub import DEFAULT_WEIGHTS, get_weights

    assert DEFAULT_WEIGHTS == "lenet5-real"
    default = lenet.load()
    assert default.model_name == "lenet5" and default.reject_margin is not None
    assert default.reject_margin > 0 and Predictor.load().reject_margin == default.reject_margin
    assert default.test_accuracy == get_weights(DEFAULT_WEIGHTS).test_accuracy >= 0.993
    assert lenet.load("lenet5").reject_margin is None  # the faithful weights stay as they were
