"""`lenet predict` (and the image decoding `lenet serve` shares) against hostile inputs: a tiny
PNG declaring 49 megapixels, a FIFO, an unwritable --save-preprocessed folder."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lenet import cli
from lenet.errors import WeightsError
from lenet.inference.decoding import (
    MAX_DECODED_PIXELS,
    WORK_PIXELS,
    ImageTooLargeError,
    NotAnImageError,
)
from lenet.inference.preprocess import preprocess_image
from lenet.models import create, get_spec, weights
from tests.reliability.helpers import bounded

MAX_GROWTH_MB = 300  # peak RSS growth allowed for decoding one image (it was ~1.3-1.8 GB)
WAIT = 60  # seconds: the bound on every wait for something that used to hang


def _png_rgba(path: Path, w: int, h: int, ink: tuple[int, int, int, int]) -> Path:
    """An RGBA PNG, transparent but for an opaque black box `ink` (x0, y0, x1, y1), written
    row by row: the file is small and this process never holds the w*h*4 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    x0, y0, x1, y1 = ink
    blank = bytes(1 + 4 * w)  # filter byte 0, then transparent pixels
    inked = bytearray(blank)
    inked[1 + 4 * x0:1 + 4 * x1] = b"\x00\x00\x00\xff" * (x1 - x0)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(bytes(inked) if y0 <= y < y1 else blank) for y in range(h))
    idat += z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


_MEASURE = """
import resource, sys
import lenet.inference.preprocess as P
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    digit = P.preprocess_image(sys.argv[1])
    result = "digit %d" % int(digit.max())
except P.ImageError as e:
    result = "%s: %s" % (type(e).__name__, e)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024)  # KiB on Linux
print(result)
"""


def _decode_in_child(path: Path) -> tuple[int, str]:
    """Peak RSS growth (MB) of a fresh process decoding `path`, and what it made of it."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                          text=True, timeout=WAIT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    grown, result = proc.stdout.splitlines()
    return int(grown), result


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_49_megapixel_png_is_refused_without_decoding_it(tmp_path) -> None:
    png = _png_rgba(tmp_path / "huge.png", 7000, 7000, (3000, 1000, 3600, 6000))
    assert png.stat().st_size < 1_000_000  # a small file that grew the process by ~1.3 GB
    grown, result = _decode_in_child(png)
    assert result.startswith("ImageTooLargeError: ") and "7000x7000 = 49.0 megapixels" in result
    assert f"limit for that is {MAX_DECODED_PIXELS // 1_000_000} megapixels" in result
    assert grown <= 20, grown  # refused from the header: nothing was decoded
    with pytest.raises(ImageTooLargeError, match="scale it down"):
        preprocess_image(png.read_bytes(), "upload")  # `lenet serve`'s path: a 413


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_large_images_that_are_accepted_stay_within_the_memory_bound(tmp_path) -> None:
    # At the decoded limit (16 MP RGBA PNG), and a 49 MP photo-sized JPEG (decoded at 1/8).
    png = _png_rgba(tmp_path / "big.png", 4000, 4000, (1800, 500, 2200, 3500))
    script = ("from PIL import Image, ImageDraw; import sys\n"
              "im = Image.new('RGB', (7000, 7000), 'white')\n"
              "ImageDraw.Draw(im).rectangle((3000, 1000, 3600, 6000), fill='black')\n"
              "im.save(sys.argv[1], quality=85)\n")
    jpg = tmp_path / "photo.jpg"
    subprocess.run([sys.executable, "-c", script, str(jpg)], check=True, timeout=WAIT)
    for path in (png, jpg):
        grown, result = _decode_in_child(path)
        assert result == "digit 255", (path.name, result)
        assert grown <= MAX_GROWTH_MB, (path.name, grown)


def test_large_images_are_shrunk_before_float_work() -> None:
    from lenet.inference.decoding import open_image

    arr = np.full((1500, 2000), 255, np.uint8)  # 3 MP: over WORK_PIXELS
    arr[200:1300, 900:1100] = 0
    for mode in ("L", "P", "1", "I;16", "RGBA"):
        img = (Image.fromarray(arr.astype(np.uint16) * 257) if mode == "I;16"
               else Image.fromarray(arr).convert(mode))
        buf = io.BytesIO()
        img.save(buf, format="PNG" if mode != "I;16" else "TIFF")
        small = open_image(buf.getvalue(), mode)
        assert small.size[0] * small.size[1] <= WORK_PIXELS, (mode, small.size)
        digit = preprocess_image(buf.getvalue(), mode)
        # The same bar whatever the mode: 20 px tall, centred, white on black.
        rows = np.flatnonzero((digit > 128).any(1))
        assert digit.max() == 255 and 19 <= rows[-1] - rows[0] + 1 <= 21, mode


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    meta = weights.WeightsMeta("lenet5", get_spec("lenet5").preprocessing, "mnist",
                               [str(i) for i in range(10)], None)
    return weights.save(tmp_path_factory.mktemp("w") / "model.safetensors", create("lenet5"),
                        meta)


@pytest.fixture()
def digit_png(tmp_path) -> Path:
    arr = np.full((60, 60), 255, np.uint8)
    arr[10:50, 27:33] = 0
    Image.fromarray(arr).save(tmp_path / "one.png")
    return tmp_path / "one.png"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_waited_on(weights_file, digit_png, tmp_path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(NotAnImageError, match=r"pipe\.png: not a regular file but a FIFO"):
        bounded(lambda: preprocess_image(fifo), WAIT)
    with pytest.raises(WeightsError, match=r"pipe\.png: not a regular file"):
        bounded(lambda: weights.read(fifo), WAIT)
    # The command: the FIFO fails on one line, the other image is still predicted.
    proc = subprocess.run([sys.executable, "-m", "lenet", "predict", str(weights_file),
                           str(fifo), str(digit_png)], capture_output=True, text=True,
                          timeout=WAIT)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"{digit_png}\t") and proc.stdout.count("\n") == 1
    assert proc.stderr == (f"lenet: error: {fifo}: not a regular file but a FIFO; "
                           "give an image file\n")


def test_an_unwritable_save_folder_is_refused_before_any_work(weights_file, digit_png,
                                                              tmp_path, capsys,
                                                              monkeypatch) -> None:
    import lenet.inference.files as F
    import lenet.inference.predict as P

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the work started before --save-preprocessed was checked")

    monkeypatch.setattr(P.Predictor, "load", no_work)
    monkeypatch.setattr(F, "predict_files", no_work)
    a_file = tmp_path / "taken"
    a_file.write_text("")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cases = {a_file: "it exists and is not a directory",
             a_file / "sub": f"{a_file} is not a directory"}
    if os.geteuid() != 0:  # root writes anywhere
        cases[locked / "out"] = f"{locked} is not writable"
    for target, reason in cases.items():
        assert cli.main(["predict", str(weights_file), str(digit_png),
                         "--save-preprocessed", str(target)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == (f"lenet: error: cannot write into {target}: {reason}; "
                                     "choose another folder with --save-preprocessed\n")
    assert not (locked / "out").exists() and list(tmp_path.glob("**/.lenet-check*")) == []
