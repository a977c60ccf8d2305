"""The number reader against bad input (issue 30): no ink, an image of words, a 20,000-px strip,
a photo of a whole page, junk bytes, huge declared sizes. Each gets a clear answer or a clear
error (an ImageError, one line), bounded in time and memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw, ImageFont

from lenet.data.strings import sample_strings
from lenet.inference.decoding import ImageError, ImageTooLargeError
from lenet.inference.read.line import MARGIN, MAX_WIDTH, LineError, to_line
from lenet.inference.read.reader import Reader, Reading
from lenet.models import create
from lenet.models.readers import manifest
from lenet.models.sdnn import SDNN
from tests.reliability import bombs
from tests.reliability.helpers import bounded

WAIT = 120  # seconds: the bound on a child process


@pytest.fixture(scope="module")
def reader() -> Reader:
    """The reader's machinery on LeNet-5's replicated digit weights (no string training)."""
    return Reader(SDNN.from_classifier(create("lenet5", pretrained=True)))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _words() -> Image.Image:
    img = Image.new("L", (900, 120), 255)
    font = ImageFont.load_default(size=60)
    ImageDraw.Draw(img).text((20, 20), "Hello, world", fill=0, font=font)
    return img


def _page(width: int, height: int, lines: int) -> Image.Image:
    """A photographed page: grey paper, `lines` lines of dark scribble, a shadow gradient."""
    ramp = np.linspace(200, 235, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    img = Image.fromarray(ramp.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    step = height // (lines + 1)
    for k in range(1, lines + 1):
        y = k * step
        for x in range(width // 10, width * 9 // 10, max(8, width // 40)):
            draw.ellipse((x, y - step // 6, x + step // 8, y + step // 6), outline=20,
                         width=max(2, step // 40))
    return img


def test_no_ink_reads_as_empty(reader) -> None:
    for blank in (np.full((80, 300), 255, np.uint8), np.zeros((28, 90), np.uint8),
                  _png(Image.new("RGB", (640, 480), (250, 248, 240)))):
        r = reader(blank)
        assert (r.text, r.digits, r.rejected, r.confidence) == ("", (), False, 1.0)


def test_an_image_of_words_gets_an_answer(reader) -> None:
    r = bounded(lambda: reader(_png(_words())), 60)
    assert isinstance(r, Reading) and set(r.text) <= set("0123456789.")
    assert all(0 <= d.x0 < d.x1 <= 900 for d in r.digits)


@pytest.mark.skipif(not manifest(), reason="no bundled reader weights yet")
def test_the_default_reader_rejects_words() -> None:
    r = Reader()(_png(_words()))
    assert r.rejected or r.text == "", r


def test_a_20000_px_strip_is_read_within_bounds(reader, mnist_test) -> None:
    images, labels = mnist_test
    s = sample_strings(images, labels, 1, 1100, "wide", np.random.default_rng(4))
    strip = s.images[0][:, :20_000]
    assert strip.shape == (28, 20_000)
    r = bounded(lambda: reader(strip), 60)
    assert len(r.text) > 500 and r.digits[-1].x1 <= 20_000
    picture = Image.fromarray(255 - strip)  # the same as a 20,000 x 28 picture
    line = bounded(lambda: to_line(_png(picture)), 30)
    assert line.scale > 0.9 and abs(line.width - 20_000 * line.scale) <= 2 * MARGIN + 1
    with pytest.raises(LineError, match=f"at most {MAX_WIDTH} px"):
        reader(np.tile(strip, (1, 2)))


def test_a_page_of_lines_is_refused_clearly(reader) -> None:
    buf = io.BytesIO()
    _page(1600, 2200, 12).save(buf, "JPEG", quality=85)
    with pytest.raises(LineError, match=r"found 12 lines of ink.*crop"):
        bounded(lambda: reader(buf.getvalue()), 60)


def test_junk_and_bombs_are_clear_errors(reader) -> None:
    with pytest.raises(ImageError, match="not an image"):
        reader(b"\x00\x01junk" * 100)
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        reader(bombs.png(12000, 12000))
    with pytest.raises(ImageError, match="unreadable or truncated"):
        reader(_png(_words())[:200])
    with pytest.raises(ValueError, match="megapixels"):
        reader(np.zeros((5000, 5000), np.uint8))


_MEASURE = """
import resource, sys
from lenet.inference.read.line import to_line
from lenet.inference.decoding import ImageError
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    to_line(data, "page.jpg")
    result = "line"
except ImageError as e:
    result = type(e).__name__
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10, result)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_24_megapixel_page_photo_costs_bounded_memory(tmp_path: Path) -> None:
    """A phone photo of a page (6000 x 4000 JPEG): decoded at reduced size, refused as
    several lines, in a fresh process whose peak memory grows by well under the decode budget
    (decoding.decode_cost's estimate for 2 MP of work: about 100 MB)."""
    path = tmp_path / "page.jpg"
    _page(4000, 6000, 20).convert("RGB").save(path, "JPEG", quality=80)
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                          text=True, timeout=WAIT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    grown, result = proc.stdout.split()
    assert result == "LineError" and int(grown) <= 150, proc.stdout


@pytest.mark.fuzz
@given(st.binary(max_size=2048))
def test_fuzz_bytes_read_or_fail_clearly(data: bytes) -> None:
    reader = _fuzz_reader()
    try:
        r = reader(data)
    except ImageError:
        return
    assert isinstance(r, Reading)


@pytest.mark.fuzz
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 60), st.integers(1, 300)),
                  elements=st.integers(0, 255)))
def test_fuzz_arrays_read_or_fail_clearly(pixels: np.ndarray) -> None:
    reader = _fuzz_reader()
    try:
        r = reader(pixels)
    except ImageError:
        return
    assert isinstance(r, Reading) and set(r.text) <= set("0123456789.")
    width = pixels.shape[1]
    assert all(0 <= d.x0 < d.x1 <= width for d in r.digits)


_FUZZ: list[Reader] = []


def _fuzz_reader() -> Reader:
    if not _FUZZ:
        _FUZZ.append(Reader(SDNN.from_classifier(create("lenet5", pretrained=True))))
    return _FUZZ[0]
