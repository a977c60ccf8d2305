"""Image decoding against bombs in every format Pillow opens (issue 32): an ICO hiding a
12000x12000 PNG, TIFFs and GIFs declaring or hiding huge frames or tiles, WebP, BMP and PSD
headers declaring huge sizes. Each is refused from its header, before anything is decoded (a
fresh process's peak memory barely moves), or decoded within the memory it was estimated at;
and the limits are lenet's own (Pillow's global state is left alone)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from lenet.inference.decoding import (
    FORMATS,
    ImageTooLargeError,
    NotAnImageError,
    decode_cost,
    open_image,
)
from lenet.inference.decoding import ImageError as P_ImageError
from lenet.inference.preprocess import NoInkError, preprocess_image
from tests.reliability import bombs

WAIT = 60  # seconds: the bound on a child process

BOMBS = {  # name: (builder, what refuses it)
    "ico-12000-png": (lambda: bombs.ico(bombs.png(12000, 12000)), "ICO images are not accepted"),
    "ico-declaring-16": (lambda: bombs.ico(bombs.png(12000, 12000), declared=16),
                         "ICO images are not accepted"),
    "tiff-12000": (lambda: bombs.tiff(12000, 12000), "12000x12000 = 144.0 megapixels"),
    "tiff-tile": (lambda: bombs.tiff(64, 64, tile=16384), "in tiles of 268.4 megapixels"),
    "tiff-5000": (lambda: bombs.tiff(5000, 5000), "limit for that is 16 megapixels"),
    "gif-12000": (lambda: bombs.gif((12000, 12000), [(12000, 12000)]), "144.0 megapixels"),
    "gif-frame-over-screen": (lambda: bombs.gif((64, 64), [(12000, 12000)]),
                              "12000x12000 = 144.0 megapixels"),
    "gif-5000": (lambda: bombs.gif((5000, 5000), [(5000, 5000)]),
                 "limit for that is 16 megapixels"),
    "webp-16000": (lambda: bombs.webp(16000, 16000), "too large"),
    "bmp-12000": (lambda: bombs.bmp(12000, 12000), "144.0 megapixels"),
    "psd-12000": (lambda: bombs.psd(12000, 12000), "PSD images are not accepted"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_from_the_header(name, monkeypatch):
    build, reason = BOMBS[name]
    data = build()
    assert len(data) < 2 * 1024 * 1024  # every one fits in an upload

    def never(*args, **kwargs):
        raise AssertionError(f"{name} was decoded")

    Image.init()  # Pillow's plugins, imported (some make an image as they load)
    monkeypatch.setattr(Image.Image, "load", never)  # no format may decode a pixel
    monkeypatch.setattr(Image.core, "new", never)  # nor allocate the image
    expected = NotAnImageError if "not accepted" in reason else ImageTooLargeError
    for attempt in (lambda: decode_cost(data, name), lambda: preprocess_image(data, name)):
        with pytest.raises(expected) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"{name}: ") and reason in message, message
        assert "\n" not in message


def test_an_ico_is_refused_before_its_opener_runs(monkeypatch):
    """Pillow's ICO opener decodes the largest entry while opening: it must never run."""
    from PIL import IcoImagePlugin

    def never(self):
        raise AssertionError("IcoImageFile._open ran")

    monkeypatch.setattr(IcoImagePlugin.IcoImageFile, "_open", never)
    with pytest.raises(NotAnImageError, match=r"^icon: ICO images are not accepted \(supported"):
        open_image(bombs.ico(bombs.png(12000, 12000)), "icon")


def test_only_the_first_frame_is_decoded():
    """A huge second frame (TIFF, GIF) costs nothing: only the first is read, and it is
    checked; these small blank first frames are decoded and found to hold no ink."""
    for data in (bombs.tiff(64, 64, second=(12000, 12000)),
                 bombs.gif((64, 64), [(64, 64), (12000, 12000)])):
        assert decode_cost(data).bytes < 10 * 2**20
        with pytest.raises(NoInkError):
            preprocess_image(data)


_MEASURE = """
import resource, sys
import lenet.inference.decoding as D
import lenet.inference.preprocess as P
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        estimate = D.decode_cost(data, path).bytes >> 20
        P.preprocess_image(data, path)
        result = "digit"
    except D.ImageError as e:
        estimate, result = 0, type(e).__name__
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10
    print(path, grown, estimate, result)
"""


def _measure(paths: list[Path]) -> dict[str, tuple[int, int, str]]:
    """{file name: (peak RSS growth MB, estimated MB, outcome)} for decoding each file in turn
    in one fresh process (each peak above all the earlier ones counts only its excess)."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, paths)],
                          capture_output=True, text=True, timeout=WAIT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    return {Path(p).name: (int(g), int(e), r) for p, g, e, r in rows}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_bombs_cost_no_memory_in_a_fresh_process(tmp_path):
    paths = []
    for name, (build, _) in sorted(BOMBS.items()):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(build())
    for name, (grown, _, result) in _measure(paths).items():
        assert result in ("ImageTooLargeError", "NotAnImageError"), (name, result)
        assert grown <= 10, (name, grown)  # was 144-576 MB for the ICO, 281 MB for the TIFF


def _bar(side: int, mode: str) -> Image.Image:
    img = Image.new("L", (side, side), 255)
    ImageDraw.Draw(img).rectangle((side // 2 - side // 20, side // 10, side // 2 + side // 20,
                                   side * 9 // 10), fill=0)
    return img.convert(mode)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_the_estimate_bounds_what_decoding_takes(tmp_path):
    """decode_cost (what the server budgets by) is above the measured peak, for the largest
    images each kind of decode takes: full-size RGBA, palette (converted before shrinking),
    a TIFF strip, WebP's canvases, and a 49 MP baseline JPEG decoded at reduced size."""
    cases = {"rgba.png": ("RGBA", 4000, "PNG", {}), "p.png": ("P", 4000, "PNG", {}),
             "rgba.tif": ("RGBA", 4000, "TIFF", {"compression": "tiff_adobe_deflate"}),
             "rgb.webp": ("RGB", 3000, "WEBP", {"lossless": True, "method": 0}),
             "photo.jpg": ("RGB", 7000, "JPEG", {"quality": 80})}
    paths = []
    for name, (mode, side, fmt, options) in cases.items():
        paths.append(tmp_path / name)
        _bar(side, mode).save(paths[-1], format=fmt, **options)
    for name, (grown, estimate, result) in _measure(paths).items():
        assert result == "digit", (name, result)
        assert grown <= estimate, (name, grown, estimate)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "MPO"])
def test_every_accepted_format_reads_a_digit(fmt):
    img = _bar(60, "RGB" if fmt in ("JPEG", "MPO", "WEBP", "PPM") else "L")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"save_all": True, "append_images": [img]}
                                 if fmt == "MPO" else {}))
    assert Image.open(io.BytesIO(buf.getvalue())).format == fmt
    digit = preprocess_image(buf.getvalue(), fmt)
    assert digit.shape == (28, 28) and digit.max() == 255


def test_a_progressive_jpeg_counts_at_full_size():
    """libjpeg keeps every coefficient of a progressive JPEG, whatever the scale it decodes
    at: over 16 MP it is refused; a baseline JPEG of the same size is read at 1/4 scale."""
    img = _bar(4200, "L")
    for progressive in (True, False):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", progressive=progressive, quality=50)
        if progressive:
            with pytest.raises(ImageTooLargeError, match="a progressive JPEG is decoded at full"):
                decode_cost(buf.getvalue())
        else:
            assert decode_cost(buf.getvalue()).bytes < 150 * 2**20


def test_pillows_global_limit_is_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    for build, _ in BOMBS.values():
        with pytest.raises((ImageTooLargeError, NotAnImageError)):
            preprocess_image(build())
    assert before == Image.MAX_IMAGE_PIXELS
    assert set(FORMATS) >= {"PNG", "JPEG"} and "ICO" not in FORMATS and "PSD" not in FORMATS


def test_cli_predict_says_one_line_per_bomb(tmp_path):
    """`lenet predict` (a real process: a warning would reach stderr) on four bombs and a
    digit: the digit's line, and exactly one `lenet: error:` line per bomb."""
    names = ("ico-12000-png", "tiff-tile", "gif-12000", "gif-frame-over-screen")
    files = []
    for name in names:
        files.append(tmp_path / name)
        files[-1].write_bytes(BOMBS[name][0]())
    ok = tmp_path / "one.png"
    _bar(60, "L").save(ok)
    proc = subprocess.run([sys.executable, "-m", "lenet", "predict", "--weights", "lenet5",
                           *map(str, files), str(ok)], capture_output=True, text=True,
                          timeout=WAIT)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"{ok}\t") and proc.stdout.count("\n") == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == len(names), proc.stderr
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"lenet: error: {tmp_path / name}: "), line
        assert BOMBS[name][1] in line, line


def test_an_unknown_signature_is_just_not_an_image():
    for data in (b"", b"hello world", bytes(100), b"%PDF-1.4\n"):
        with pytest.raises(NotAnImageError, match=r"^x: not an image \(supported: PNG"):
            preprocess_image(data, "x")



# --------------------------------------------------------------------------- fuzzing
def _sample(fmt: str) -> bytes:
    img = _bar(40, "RGBA" if fmt == "ICO" else "RGB" if fmt in ("JPEG", "WEBP") else "L")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


SAMPLES = {fmt: _sample(fmt) for fmt in ("PNG", "GIF", "ICO", "TIFF", "BMP", "JPEG", "WEBP")}
SAMPLES.update({"tiff-deflate": bombs.tiff(300, 200), "gif-lzw": bombs.gif((300, 200),
                                                                            [(300, 200)])})
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"II*\x00", b"MM\x00*",
         b"\x00\x00\x01\x00", b"BM", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBPVP8L",
         b"8BPS", b"P5\n", b"P6\n40 40\n255\n"]


def _decoded_or_refused(data: bytes) -> None:
    """The decoding contract: a 28x28 uint8 digit, or an ImageError; nothing else (no
    traceback from deep in Pillow, no MemoryError)."""
    try:
        footprint = decode_cost(data, "fuzz")
    except P_ImageError:
        footprint = None
    try:
        digit = preprocess_image(data, "fuzz")
    except P_ImageError as e:
        assert str(e).startswith("fuzz: ") and "\n" not in str(e), str(e)
        return
    assert footprint is not None  # what decodes was also estimated, from the same header
    assert digit.shape == (28, 28) and digit.dtype.name == "uint8"


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGIC), data=st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(magic, data):
    _decoded_or_refused(magic + data)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(SAMPLES)),
       flips=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1,
                      max_size=6),
       later=st.lists(st.tuples(st.integers(64, 1 << 16), st.integers(0, 255)), max_size=4),
       cut=st.none() | st.integers(0, 1 << 16))
def test_fuzz_mutated_headers(fmt, flips, later, cut):
    """Valid small images (PNG, GIF, ICO, TIFF, BMP, JPEG, WebP) with bytes of their headers
    changed (sizes, frame counts, tiles, offsets), a few later bytes too, maybe truncated."""
    data = bytearray(SAMPLES[fmt])
    for pos, byte in flips + later:
        data[pos % len(data)] = byte
    _decoded_or_refused(bytes(data[:cut] if cut is not None else data))
