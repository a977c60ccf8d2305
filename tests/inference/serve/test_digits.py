"""The page's distortions (the sliders) and an upload's preprocessing steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.loadtest import png_bytes
from lenet.inference.preprocess import NoInkError, preprocess_image
from lenet.inference.serve.digits import LIMITS, Transform, TransformError, apply, upload_digit


def _dot(y: int, x: int) -> np.ndarray:
    d = np.zeros((28, 28), np.uint8)
    d[y, x] = 255
    return d


def _where(d: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(d.argmax()), d.shape)
    return int(y), int(x)


def _bar() -> np.ndarray:
    d = np.zeros((28, 28), np.uint8)
    d[4:24, 12:16] = 255
    return d


def test_identity_keeps_the_digit():
    d = _bar()
    assert np.array_equal(apply(d, Transform()), d)
    assert np.array_equal(apply(d, Transform(seed=7)), d)


def test_rotation_is_counter_clockwise_on_screen():
    # A dot right of the centre (13.5, 13.5) goes above it after +90 degrees.
    assert _where(apply(_dot(13, 22), Transform(rotate=90))) in {(5, 13), (5, 14), (4, 13)}
    assert _where(apply(_dot(13, 22), Transform(rotate=-90))) in {(22, 13), (22, 14), (23, 13)}


def test_shift_scale_squeeze_shear():
    assert _where(apply(_dot(13, 13), Transform(shift_x=3, shift_y=-2))) == (11, 16)
    bar = _bar()
    rows = np.flatnonzero(apply(bar, Transform(scale=0.5)).max(axis=1) > 100)
    assert rows[0] >= 8 and rows[-1] <= 19  # 20 px tall -> 10 px, about the centre
    wide = apply(bar, Transform(squeeze=2.0))  # twice as wide, half as tall
    assert (wide[14] > 100).sum() >= 7 and (wide.max(axis=1) > 100).sum() <= 11
    sheared = apply(bar, Transform(shear=0.5))
    top, bottom = _where(sheared[:8]), _where(sheared[20:])
    assert top[1] < bottom[1]  # x' = x + k (y - centre): the bottom moves right


def test_stroke_width_and_noise():
    bar = _bar()
    assert (apply(bar, Transform(stroke=1))[14] > 0).sum() == 6
    assert (apply(bar, Transform(stroke=2))[14] > 0).sum() == 8
    thin = np.zeros((28, 28), np.uint8)
    thin[4:24, 11:16] = 255
    assert (apply(thin, Transform(stroke=-1))[14] > 0).sum() == 3
    a = apply(bar, Transform(noise=0.2, seed=3))
    assert np.array_equal(a, apply(bar, Transform(noise=0.2, seed=3)))  # seeded
    assert not np.array_equal(a, apply(bar, Transform(noise=0.2, seed=4)))
    # On the black background, clipping keeps the positive half: mean sigma / sqrt(2 pi).
    sigma = 0.2 * 255
    assert a.dtype == np.uint8 and 0.3 * sigma < np.abs(a.astype(int) - bar).mean() < 0.5 * sigma


@pytest.mark.parametrize("doc,needle", [
    ([], "must be an object"),
    ({"spin": 3}, "unknown field 'spin'"),
    ({"rotate": "5"}, "transform.rotate"),
    ({"rotate": True}, "transform.rotate"),
    ({"rotate": 181}, "-180..180"),
    ({"scale": 0}, "0.25..4"),
    ({"noise": float("nan")}, "transform.noise"),
    ({"shift_x": 10**400}, "transform.shift_x"),
    ({"stroke": 1.5}, "whole number"),
    ({"seed": -1}, "transform.seed"),
])
def test_bad_transforms_are_named(doc, needle):
    with pytest.raises(TransformError, match=None) as e:
        Transform.parse(doc)
    assert needle in str(e.value)


def test_parse_fills_defaults_and_round_trips():
    t = Transform.parse({"rotate": 15, "stroke": 1, "seed": 2})
    assert t == Transform(rotate=15.0, stroke=1, seed=2)
    assert Transform.parse(t.to_dict()) == t and Transform.parse(None) == Transform()
    assert set(LIMITS) == set(Transform().to_dict())


def test_the_forward_map_is_rotation_shear_then_scale_in_pixels():
    # Was test_inverse_affine_inverts_the_forward_map: the inverse map in align_corners=True
    # coordinates is gone; the forward map in pixels is lenet.data.geometry's, as in training.
    t = Transform(rotate=30, scale=1.2, squeeze=0.8, shear=0.3, shift_x=2, shift_y=-1)
    a = math.radians(30)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    fwd = rot @ np.array([[1, 0.3], [0, 1]]) @ np.diag([1.2 * 0.8, 1.2 / 0.8])
    assert np.allclose(t.forward().numpy(), np.hstack([fwd, [[2], [-1]]]))
    # apply() warps by that map about the centre (13.5, 13.5): a dot's ink lands where it says.
    out = apply(_dot(13, 22), t).astype(np.float64)
    rows, cols = np.indices(out.shape)
    got = np.array([(out * cols).sum(), (out * rows).sum()]) / out.sum()
    want = fwd @ np.array([22 - 13.5, 13 - 13.5]) + np.array([2, -1]) + 13.5
    assert np.abs(got - want).max() < 0.3, (got, want)


def test_upload_is_preprocessed_exactly_like_lenet_predict(mnist_test):
    images, _ = mnist_test
    for i in range(5):
        png = png_bytes(255 - images[i], "RGB", 84)  # a dark-on-light scan
        digit, steps = upload_digit(png)
        assert np.array_equal(digit, preprocess_image(png))
        assert [s["name"] for s in steps] == ["grayscale", "ink made white", "cropped to the ink",
                                              "scaled to 20 px, centred by mass (28x28)"]
        assert steps[0]["width"] == steps[0]["height"] == 56
        assert steps[-1]["pixels"] == digit.reshape(-1).tolist()
        top, left, bottom, right = steps[1]["box"]
        assert 0 <= top < bottom <= 56 and 0 <= left < right <= 56
        for s in steps:
            assert len(s["pixels"]) == s["width"] * s["height"] and max(s["pixels"]) <= 255
    light = png_bytes(images[0])  # already white on black: nothing to invert
    assert upload_digit(light)[1][1]["name"] == "ink already white"
    with pytest.raises(NoInkError):
        upload_digit(png_bytes(np.full((30, 30), 255, np.uint8)))
