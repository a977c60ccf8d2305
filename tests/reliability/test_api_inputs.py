"""The Python API's inputs (issue 32, item 5; issue 31, item 3): a Predictor takes anything an
image is, and refuses, before any work, what no image is.

Each case of the issue is kept: a 28x28 array, a 3-channel image and the wrong side length
raised torch's internal RuntimeErrors; float64 images in [0, 1], values of 300, negative ints
and NaN were answered (a confident "1"); a 10000x10000 array tried to allocate 6.4 GB.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from lenet.errors import LenetError
from lenet.inference.predict import InputError, InputTypeError, Prediction, Predictor

# Every refusal says what is taken: the shapes, the dtypes and their ranges.
NAMES_SHAPE_DTYPE_RANGE = ("(H, W)", "(N, C, H, W)", "uint8", "0..255", "[0, 1]")


@pytest.fixture(scope="module")
def reader() -> Predictor:
    return Predictor.load("lenet5")


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Eight real test digits (uint8 (8, 28, 28), white on black) and their labels."""
    images, labels = mnist_test
    return images[:8], labels[:8]


def _refused(call: Callable[[], Any], error: type = InputError) -> str:
    """The one-line message of the clear error `call` raises (a ValueError or TypeError that
    is also a LenetError, so the CLI prints it as one line)."""
    with pytest.raises(error) as e:
        call()
    assert isinstance(e.value, LenetError) and isinstance(e.value, (ValueError, TypeError))
    assert "\n" not in str(e.value)
    return str(e.value)


# --------------------------------------------------------------------------- issue 32's cases
def test_a_28x28_array_is_answered(reader: Predictor, digits) -> None:
    images, labels = digits
    for digit, label in zip(images, labels, strict=True):
        answer = reader(digit)
        assert isinstance(answer, Prediction) and answer.label == str(label)
    assert reader.predict(images[0])[0].label == str(labels[0])  # predict: a list of one


def test_a_three_channel_image_is_made_gray_as_an_image_file_is(reader: Predictor,
                                                                digits) -> None:
    images, labels = digits
    for digit, label in zip(images, labels, strict=True):
        rgb = np.repeat(digit[..., None], 3, axis=2)  # (28, 28, 3): numpy's layout
        assert reader(rgb).label == str(label)
        assert reader(torch.from_numpy(rgb).permute(2, 0, 1)).label == str(label)  # (3, H, W)
        assert np.array_equal(reader.scores(rgb), reader.scores(digit))
        tinted = np.stack([digit, digit // 2, digit // 4], axis=2)  # colour: gray by weights
        assert reader(tinted).label == str(label)


def test_the_wrong_side_length_goes_through_mnists_preprocessing(reader: Predictor, digits,
                                                                 tmp_path: Path) -> None:
    images, labels = digits
    for i, (digit, label) in enumerate(zip(images, labels, strict=True)):
        big = np.asarray(Image.fromarray(digit).resize((56, 56), Image.Resampling.BILINEAR))
        paper = 255 - big  # black ink on white paper, as a scan: inverted like a file
        path = tmp_path / f"{i}.png"
        Image.fromarray(paper).save(path)
        by_file = reader(path)
        assert by_file.label == str(label)
        assert reader(paper).scores == by_file.scores  # the file's own preprocessing
        assert reader(torch.from_numpy(paper).float() / 255).label == str(label)


def test_float64_images_in_0_1_are_answered_as_their_uint8_levels(reader: Predictor,
                                                                  digits) -> None:
    images, _ = digits
    expected = reader.scores(images)
    assert np.array_equal(reader.scores(images.astype(np.float64) / 255), expected)
    assert np.array_equal(reader.scores(images.astype(np.float32) / 255), expected)
    assert np.array_equal(reader.scores(torch.from_numpy(images)[:, None].double() / 255),
                          expected)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "int8", "int16", "int64",
                                   ">u2", "float16", "float32", "float64", ">f8"])
def test_every_integer_and_float_dtype_is_read_as_gray_levels(reader: Predictor, digits,
                                                              dtype: str) -> None:
    images, _ = digits
    images = images // 2  # int8 holds 0..127
    dt = np.dtype(dtype)
    x = images.astype(dt) if dt.kind in "iu" else (images / 255).astype(dt)
    assert np.array_equal(reader.scores(x), reader.scores(images))


@pytest.mark.parametrize("bad,needle", [
    (np.full((28, 28), 300), "integer pixels from 300 to 300"),
    (np.full((28, 28), 300.0), "float pixels up to 300: floats must lie in [0, 1]"),
    (np.full((28, 28), -7), "integer pixels from -7 to -7"),
    (np.full((28, 28), -0.5), "float pixels from -0.5 to -0.5: this looks already normalized"),
    (np.full((28, 28), np.nan), "pixels include NaN or infinity"),
    (np.full((28, 28), np.inf), "pixels include NaN or infinity"),
    (np.where(np.eye(28) > 0, np.nan, 0.5), "pixels include NaN or infinity"),
    (torch.full((1, 28, 28), float("nan")), "pixels include NaN or infinity"),
    (torch.full((2, 1, 28, 28), 256), "integer pixels from 256 to 256"),
])
def test_out_of_range_values_are_refused_not_answered(reader: Predictor, bad: Any,
                                                      needle: str) -> None:
    message = _refused(lambda: reader(bad))
    assert needle in message
    assert all(part in message for part in NAMES_SHAPE_DTYPE_RANGE), message


@pytest.mark.parametrize("huge", [
    np.broadcast_to(np.uint8(0), (10_000, 10_000)),  # 100 MB as uint8, 800 MB as float64
    np.broadcast_to(np.float64(0.5), (10_000, 10_000, 3)),
    np.broadcast_to(np.uint8(0), (2, 5_000, 5_000)),
    # No data at all: reading it (or copying it) would raise, not refuse.
    torch.empty(1, 10_000, 10_000, dtype=torch.float64, device="meta"),
])
def test_a_huge_array_is_refused_before_any_allocation(reader: Predictor, huge: Any) -> None:
    # The arrays are views of one value: converting any of them would allocate its full size
    # (which tracemalloc sees: numpy reports its buffers to it; torch does not, hence "meta").
    tracemalloc.start()
    try:
        message = _refused(lambda: reader(huge))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert "5000x5000" in message or "10000x10000" in message
    assert "at most 16 megapixels an image" in message
    assert all(part in message for part in NAMES_SHAPE_DTYPE_RANGE), message


# --------------------------------------------------------------------------- every form
def test_every_accepted_form_gives_the_label_of_the_file(reader: Predictor, digits,
                                                         tmp_path: Path) -> None:
    images, labels = digits[0][:4], digits[1][:4]
    paths = []
    for i, digit in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(digit).save(paths[-1])
    expected = [reader(p).label for p in paths]
    assert expected == [str(label) for label in labels]
    for i, (digit, path) in enumerate(zip(images, paths, strict=True)):
        u8 = torch.from_numpy(digit)
        forms = [str(path), path, path.read_bytes(), Image.open(path), Image.fromarray(digit),
                 Image.fromarray(digit).convert("RGB"), digit, digit[..., None],
                 np.repeat(digit[..., None], 3, axis=2),
                 np.dstack([np.repeat(digit[..., None], 3, axis=2), np.full_like(digit, 255)]),
                 digit.astype(np.float64) / 255, digit.astype(np.float32) / 255,
                 digit.astype(np.int64), u8, u8[None], u8[None].expand(3, 28, 28),
                 u8.float() / 255, u8[None].float() / 255]
        for form in forms:
            answer = reader(form)
            assert isinstance(answer, Prediction), type(form)
            assert answer.label == expected[i], (i, type(form), getattr(form, "shape", None))
            assert reader.predict_image(form).label == expected[i]
    batches = [images, images[..., None], torch.from_numpy(images)[:, None],
               torch.from_numpy(images)[:, None].float() / 255, paths, tuple(map(str, paths)),
               [Image.open(p) for p in paths], list(images)]
    for batch in batches:
        answers = reader(batch)
        assert isinstance(answers, list) and [a.label for a in answers] == expected


def test_a_file_its_bytes_and_its_pil_image_are_preprocessed_alike(reader: Predictor,
                                                                   digits) -> None:
    images, _ = digits
    buf = io.BytesIO()
    Image.fromarray(255 - images[3]).resize((84, 84)).save(buf, format="PNG")
    data = buf.getvalue()
    by_bytes = reader(data).scores
    assert reader(bytearray(data)).scores == by_bytes
    assert reader(Image.open(io.BytesIO(data))).scores == by_bytes


# --------------------------------------------------------------------------- what is no image
@pytest.mark.parametrize("bad,needle", [
    (np.zeros(784, np.uint8), "ndarray of shape (784,)"),
    (np.zeros((2, 2, 28, 28), np.uint8), "ndarray of shape (2, 2, 28, 28)"),
    (torch.zeros(5, 28, 28), "Tensor of shape (5, 28, 28)"),
    (torch.zeros(2, 28, 28, 1), "Tensor of shape (2, 28, 28, 1)"),
    (np.zeros((0, 28), np.uint8), "images of 0x28 pixels"),
    (255 - np.zeros((28, 28), np.uint8), "light background; invert it (255 - x)"),
])
def test_shapes_that_are_no_image_are_refused(reader: Predictor, bad: Any, needle: str
                                              ) -> None:
    assert needle in _refused(lambda: reader(bad))


def test_a_tensor_of_n_gray_digits_is_told_how_to_say_so(reader: Predictor, digits) -> None:
    images, labels = digits
    data = torch.from_numpy(images)  # as MNIST.data[:8]: (N, H, W), no channel
    assert "give x.unsqueeze(1) or x.numpy()" in _refused(lambda: reader(data))
    assert [p.label for p in reader(data.unsqueeze(1))] == [str(x) for x in labels]
    assert [p.label for p in reader(data.numpy())] == [str(x) for x in labels]


@pytest.mark.parametrize("bad,needle", [
    (3, "got int"),
    (None, "got NoneType"),
    ({"pixels": [0] * 784}, "got dict"),
    (np.zeros((28, 28), dtype=object), "array of dtype object"),
    (np.zeros((28, 28), dtype=complex), "array of dtype complex128"),
    (np.zeros((28, 28), dtype="U1"), "array of dtype <U1"),
    (torch.zeros(28, 28, dtype=torch.bool), "dtype torch.bool"),
])
def test_types_that_hold_no_image_are_type_errors(reader: Predictor, bad: Any, needle: str
                                                  ) -> None:
    message = _refused(lambda: reader(bad), InputTypeError)
    assert needle in message and "uint8" in message and "[0, 1]" in message


def test_a_blank_picture_is_no_digit_and_a_broken_file_a_clear_error(reader: Predictor,
                                                                     tmp_path: Path) -> None:
    assert reader(np.zeros((40, 40), np.uint8)).no_digit  # an answer (issue 30), no error
    assert reader(Image.new("L", (40, 40))).label is None
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(LenetError, match=r"broken\.png"):
        reader(broken)


# --------------------------------------------------------------------------- fuzzing
_DTYPES = st.sampled_from(["uint8", "int16", "int64", "uint32", "float16", "float32", "float64",
                           "bool", "complex64", ">f4"])


@pytest.mark.fuzz
@given(array=_DTYPES.flatmap(lambda dt: hnp.arrays(
           dt, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=40))),
       as_tensor=st.booleans())
@settings(deadline=None)
def test_fuzz_any_array_is_answered_or_refused_in_one_clear_line(reader: Predictor,
                                                                array: np.ndarray,
                                                                as_tensor: bool) -> None:
    x: Any = array
    if as_tensor and array.dtype.isnative and array.dtype.kind != "c":
        x = torch.from_numpy(array.copy())
    try:
        answer = reader(x)
    except (InputError, InputTypeError) as e:
        assert isinstance(e, LenetError) and "\n" not in str(e) and str(e)
        return
    answers = answer if isinstance(answer, list) else [answer]
    # A blank picture is an answer too: no digit, label None (issue 30).
    assert all(isinstance(a, Prediction) and (a.label in reader.classes or a.no_digit)
               for a in answers)
    assert all(np.isfinite(a.probabilities).all() for a in answers)
