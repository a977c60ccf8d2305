"""Reader: every input kind, batches equal to single reads, positions in the input's pixels,
rejection, length and pattern, and the three methods on real MNIST strings."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lenet.data.strings import sample_strings
from lenet.errors import WeightsError
from lenet.inference.decoding import ImageError
from lenet.inference.read import reader as reader_module
from lenet.inference.read.reader import BATCH, BATCH_PIXELS, Reader, Reading, read
from lenet.models import create
from lenet.models.readers import manifest
from lenet.models.sdnn import SDNN
from lenet.runtime import workers
from lenet.runtime.threads import threads

needs_bundled_reader = pytest.mark.skipif(not manifest(), reason="no bundled reader weights yet")


@pytest.fixture(scope="module")
def sdnn() -> SDNN:
    """LeNet-5's digit weights replicated over the line (no string training): its readings
    are not accurate, but every mechanism of the reader runs on them."""
    return SDNN.from_classifier(create("lenet5", pretrained=True))


@pytest.fixture(scope="module")
def strings(mnist_test):
    images, labels = mnist_test
    return sample_strings(images[:3000], labels[:3000], 40, 5, "wide",
                          np.random.default_rng(11))


def _png(strip: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray(255 - strip)
    if scale != 1:
        img = img.resize((strip.shape[1] * scale, strip.shape[0] * scale))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _same(a: Reading, b: Reading) -> None:
    assert (a.text, a.rejected, a.path, a.digits[:0]) == (b.text, b.rejected, b.path, ())
    assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    assert [(d.char, d.x0, d.x1) for d in a.digits] == [(d.char, d.x0, d.x1) for d in b.digits]


def test_a_batch_reads_as_each_image_alone(sdnn, strings) -> None:
    reader = Reader(sdnn)
    images = [*strings.images[:12], np.zeros((28, 50), np.uint8)]
    together = reader(images)
    assert isinstance(together, list) and len(together) == len(images)
    for image, got in zip(images, together, strict=True):
        _same(got, reader(image))
    assert together[-1].text == "" and together[-1].confidence == 1.0


@pytest.mark.skipif(not workers.can_fork(), reason="this system does not fork")
def test_workers_read_a_list_as_this_process_does(sdnn, strings, monkeypatch) -> None:
    images = [_png(s) for s in strings.images[:9]] + [b"junk", *strings.images[9:12]]
    monkeypatch.setattr(reader_module, "PER_WORKER", 4)  # 13 images: three workers' shares
    here, shared = Reader(sdnn), Reader(sdnn, workers=3)
    for a, b in zip(shared(images[:9]), here(images[:9]), strict=True):
        _same(a, b)
    # An image's error names it by its place in the whole list, from whichever worker.
    with pytest.raises(ImageError, match="item 9"):
        shared(images)
    with pytest.raises(ValueError, match="length -1"):
        shared(images, length=-1)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            Reader(sdnn, workers=bad)


def test_buckets_cover_every_item_once_in_width_order() -> None:
    widths = [int(w) for w in np.random.default_rng(0).integers(30, 400, 700)]
    made = {}
    for n in (1, 2):
        with threads(n):
            made[n] = batches = reader_module._buckets(list(range(700)), widths)
        assert sorted(i for b in batches for i in b) == list(range(700))
        assert all(len(b) <= BATCH for b in batches)
        # A thread's share of the padded pixels is bounded (a wider strip goes alone).
        assert all(len(b) * max(widths[i] for i in b) * 28 <= n * BATCH_PIXELS
                   for b in batches if len(b) > 1)
        flat = [widths[i] for b in batches for i in b]
        assert flat == sorted(flat)
    assert len(made[2]) < len(made[1])


def test_every_input_kind_gives_the_same_reading(sdnn, strings, tmp_path: Path) -> None:
    reader = Reader(sdnn)
    strip = strings.images[0]
    data = _png(strip, 2)
    (tmp_path / "n.png").write_bytes(data)
    pictures = [reader(tmp_path / "n.png"), reader(str(tmp_path / "n.png")), reader(data),
                reader(Image.open(io.BytesIO(data))),
                reader(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))]
    for r in pictures[1:]:
        _same(r, pictures[0])
    arrays = [reader(strip), reader(torch.from_numpy(strip)[None]),
              reader(torch.from_numpy(strip).float() / 255.0)]
    for r in arrays[1:]:
        _same(r, arrays[0])
    batch = reader(np.stack([strip, strip]))  # (N, 28, W): a batch, as Predictor takes it
    assert isinstance(batch, list) and len(batch) == 2
    _same(batch[1], arrays[0])


def test_digit_positions_are_in_the_input_images_pixels(sdnn, strings) -> None:
    reader = Reader(sdnn)
    for strip in strings.images[:10]:
        small, big = reader(strip), reader(_png(strip, 3))
        width = 3 * strip.shape[1]
        for d in big.digits:
            assert 0 <= d.x0 < d.x1 <= width
        xs = [d.x0 for d in big.digits]
        assert xs == sorted(xs)
        for d in small.digits:  # the strip itself: its own columns
            assert 0 <= d.x0 < d.x1 <= strip.shape[1]


def test_reject_length_and_pattern(sdnn, strings) -> None:
    images = strings.images[:10]
    never, always = Reader(sdnn, reject=0.0), Reader(sdnn, reject=1.0)
    assert not any(r.rejected for r in never(images))
    assert all(r.rejected or r.confidence == 1.0 for r in always(images))
    assert Reader(sdnn).reject is None  # a bare module has no threshold of its own
    fives = Reader(sdnn)(images, length=5)
    assert all(len(r.text) == 5 and len(r.digits) == 5 for r in fives)
    amounts = Reader(sdnn)(images, pattern="amount")
    assert all(re.fullmatch(r"\d+\.\d\d", r.text) for r in amounts)
    assert all(re.fullmatch(r"\d{5}", r.text) for r in Reader(sdnn)(images, pattern="zip"))
    with pytest.raises(ValueError, match="length"):
        Reader(sdnn)(images[0], length=-1)
    with pytest.raises(ValueError, match="pattern"):
        Reader(sdnn)(images[0], pattern="d{")


def test_columns_and_to_dict(sdnn, strings) -> None:
    r = Reader(sdnn)(strings.images[0])
    assert r.columns is not None and r.columns.shape == (sdnn.columns(strings.images[0].shape[1]),
                                                         12)
    assert np.allclose(r.columns.sum(axis=1), 1.0, atol=1e-4)
    assert len(r.path) == len(r.columns)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["text"] == r.text and d["method"] == "sdnn" and len(d["columns"]) == len(r.path)
    assert [x["char"] for x in d["digits"]] == list(r.text)
    lean = r.to_dict(columns=False)  # what a line of `lenet read` needs
    assert "columns" not in lean and "path" not in lean
    assert lean == {k: v for k, v in r.to_dict().items() if k not in ("columns", "path")}


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="method 'ocr'"):
        Reader(method="ocr")
    with pytest.raises(ValueError, match="reject 2"):
        Reader(method="components", reject=2)
    with pytest.raises(TypeError, match=r"SDNN\.from_classifier"):
        Reader(torch.nn.Linear(2, 2))
    with pytest.raises(WeightsError, match="lenet5: digit weights, not reader weights"):
        Reader("lenet5")
    with pytest.raises(WeightsError, match=r"lenet5-sdnn: reader weights .* not digit weights"):
        Reader(method="segment", digits="lenet5-sdnn")


@pytest.mark.parametrize("method", ["components", "segment"])
def test_the_segmenting_methods_read_wide_strings(method, strings) -> None:
    """Real MNIST test digits, wide gaps: cut well, the bundled digit weights read them."""
    reader = Reader(method=method, digits="lenet5")
    got = reader(strings.images[:12])
    right = [r.text == t for r, t in zip(got, strings.texts, strict=False)]
    assert np.mean(right) >= 0.75, [r.text for r in got]
    for r, ok, boxes in zip(got, right, strings.boxes, strict=False):
        if ok:  # each digit's columns where it was drawn
            for d, (x0, x1) in zip(r.digits, boxes, strict=True):
                assert abs(d.x0 - x0) <= 4 and abs(d.x1 - x1) <= 4, (r, boxes)
    assert reader(np.zeros((28, 60), np.uint8)).text == ""


@needs_bundled_reader
def test_the_default_reader_reads_real_strings(mnist_test) -> None:
    images, labels = mnist_test
    s = sample_strings(images[5000:8000], labels[5000:8000], 100, 5, "paper",
                       np.random.default_rng(7))
    import lenet

    assert lenet.read is read and lenet.Reader is Reader
    got = lenet.read(s.images)
    assert isinstance(got, list)
    accuracy = np.mean([r.text == t for r, t in zip(got, s.texts, strict=True)])
    assert accuracy >= 0.85
    errors = [abs(d.x0 - x0) + abs(d.x1 - x1)  # each digit's ink columns, as drawn
              for r, t, boxes in zip(got, s.texts, s.boxes, strict=True) if r.text == t
              for d, (x0, x1) in zip(r.digits, boxes, strict=True)]
    assert np.mean(errors) / 2 <= 2.0
    photo = read(_png(s.images[0], 4))  # the same number as a photo-sized PNG
    assert isinstance(photo, Reading) and photo.method == "sdnn"
    assert read(s.images[0], length=5).text.isdigit()
