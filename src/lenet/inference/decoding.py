"""Images in, within bounds: a file's path or bytes (or an opened PIL image) to grey levels,
for :mod:`lenet.inference.preprocess` (one digit) and :mod:`lenet.inference.read.line` (one line
of a number), and the :class:`ImageError` family every refusal raises.

Decoding is bounded, because a 200 KB PNG can declare 49 megapixels (over 1 GB once decoded,
composited and turned into floats), and an ICO, a GIF or a TIFF can hide as much: only the
formats in :data:`FORMATS` are opened (anything else, ICO and PSD included, is refused by its
signature before Pillow runs its opener: ICO's decodes while opening). Every check reads the
header alone (:func:`plan_decode`): an image declaring over :data:`MAX_PIXELS` is refused
unread; a baseline JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (``draft``) when large,
and straight to grayscale; any other image (a progressive JPEG too) is decoded at full size, so
over :data:`MAX_DECODED_PIXELS` it is refused (scale it down, or send a JPEG), and so is a TIFF
whose declared tile (decoded whole, into a buffer of its own) is. Only the first frame of a
GIF, TIFF or WebP is read: Pillow grows a GIF's size to fit its first frame, so that frame is
what the size checks see. What is decoded is then shrunk by whole-pixel averaging (``reduce``)
to about :data:`WORK_PIXELS` before any float work. A digit never needs more: it ends up 20 px
tall. :func:`decode_cost` estimates, from the header, the bytes decoding an image will hold at
its peak (the server budgets concurrent decodes by it). The limits are this module's own:
Pillow's global ``Image.MAX_IMAGE_PIXELS`` is left as it is.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import numpy as np

# Pillow's openers register as their plugins are imported: those of FORMATS alone, where
# Image.open would import all forty (twice the time: 30 ms that each process reading an image
# paid, and each forked worker of `lenet read` again).
from PIL import (  # noqa: F401  (the plugins: imported for their openers)
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from lenet.errors import LenetError
from lenet.storage.regular import NotRegularFile, open_regular

MAX_PIXELS = 50_000_000  # declared in the header: refused before anything is decoded
# Decoded at full size (any format but a large JPEG): 64 MB for 16 MP of RGBA, 4000x4000.
MAX_DECODED_PIXELS = 16_000_000
WORK_PIXELS = 2_000_000  # larger decoded images are averaged down to about this size
# What decoding one image may hold at its peak (decode_cost): float64 arrays of the work size
# held at once by to_grayscale and mnist_trace (measured: about 40 bytes a work pixel), and
# what any decode holds besides the pixels (the file, decoder state, the 28x28 answer).
WORK_BYTES = 48
BASE_BYTES = 4 * 1024 * 1024
# The formats a photo or scan of a digit comes in (Pillow's names; JPEG includes MPO, the
# phone cameras' multi-picture JPEG). Any other is refused before Pillow opens it: some
# openers decode while opening (ICO decodes its largest entry, whatever size it hides).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


class ImageError(LenetError):
    """An input image is unreadable, not an image, too large, or holds no ink."""


class NotAnImageError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    pass


class UnsupportedImageError(ImageError):
    """The file decodes, but its pixel mode cannot be turned into grayscale (e.g. LAB)."""


# --------------------------------------------------------------------------- images
def open_image(source: str | os.PathLike[str] | bytes, name: str | None = None
               ) -> Image.Image:
    """Open and decode an image (an animation's first frame), bounded in memory: a format not
    in :data:`FORMATS` or a huge image is refused unread, a large one decoded at reduced size
    where the format allows it (JPEG) and averaged down to about :data:`WORK_PIXELS` (see the
    module's docstring)."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    with _opened(source, label) as img:
        plan_decode(img, label)
        return _decode(img)


class Footprint(NamedTuple):
    """What decoding an image will take, read from its header: its declared size, and the
    bytes :func:`~lenet.inference.preprocess.preprocess_image` may hold at its peak for it
    (an estimate on the high side)."""

    width: int
    height: int
    bytes: int


def decode_cost(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Footprint:
    """The image's :class:`Footprint`, from its header alone (nothing is decoded); raises what
    :func:`open_image` would for an image refused unread. The server budgets its concurrent
    decodes by it."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    with _opened(source, label) as img:
        return plan_decode(img, label)


@contextlib.contextmanager
def _opened(source: str | os.PathLike[str] | bytes, label: str) -> Iterator[Image.Image]:
    """The image Pillow opens lazily (header read, nothing decoded), if its format is one of
    FORMATS; every failure as an ImageError."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else _open_regular(source, label)
    with fp:
        try:
            with _open_lazily(fp, label) as img:
                yield img
        except ImageError:
            raise
        except Image.DecompressionBombError as e:  # some openers check the size themselves
            raise ImageTooLargeError(f"{label}: image too large to decode safely ({e})") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                struct.error) as e:
            raise ImageError(f"{label}: unreadable or truncated image ({e})") from None


def _open_lazily(fp: IO[bytes], label: str) -> Image.Image:
    """``Image.open(fp, formats=FORMATS)`` without Pillow's own size check (plan_decode's is
    stricter, and Pillow's warns, DecompressionBombWarning, before plan_decode can refuse in
    one line): each format's signature is tried, then its opener (which reads the header
    only). GIF's opener warns of a first frame over Pillow's limit itself, so a GIF's first
    frame is measured first (:func:`_gif_canvas`)."""
    head = fp.read(16)
    for fmt in FORMATS:
        opener, accept = Image.OPEN.get(fmt, (None, None))  # absent from this Pillow build
        if opener is not None and _signature(accept, head):
            if fmt == "GIF":
                _check_size(*_gif_canvas(fp), label)
            fp.seek(0)
            try:
                return opener(fp, label)
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # not this format after all (as Image.open does): try the next
    raise NotAnImageError(_unsupported(fp, label))


def _gif_canvas(fp: IO[bytes]) -> tuple[int, int]:
    """The size Pillow will give a GIF: its screen, grown to fit the first frame (read from
    the image descriptor after the colour table and any extension blocks); (0, 0) where there
    is no first frame (Pillow's opener then says what is wrong)."""
    fp.seek(6)
    screen = fp.read(7)
    if len(screen) < 7:
        return 0, 0
    w, h, flags = struct.unpack("<HHB", screen[:5])
    fp.seek(3 << ((flags & 7) + 1) if flags & 0x80 else 0, os.SEEK_CUR)
    while (kind := fp.read(1)) == b"!":  # an extension: its label, then sub-blocks
        fp.read(1)
        while (size := fp.read(1)) not in (b"", b"\0"):
            fp.seek(size[0], os.SEEK_CUR)
    frame = fp.read(8)
    if kind != b"," or len(frame) < 8:
        return 0, 0
    left, top, fw, fh = struct.unpack("<HHHH", frame)
    return max(w, left + fw), max(h, top + fh)


def _check_size(w: int, h: int, label: str) -> None:
    if w * h > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{label}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels (scale it down first)")


def _signature(accept: Any, head: bytes) -> bool:
    """Whether a Pillow plugin's signature check takes `head` (a str is its "cannot open")."""
    result = accept(head) if accept is not None else False
    return bool(result) and not isinstance(result, str)


def _unsupported(fp: IO[bytes], label: str) -> str:
    """Why no format of FORMATS took the file: a format lenet does not take (named), or not
    an image at all. Told by the formats' signatures alone: no other opener is run."""
    supported = "supported: PNG, JPEG, GIF, BMP, TIFF, WebP, PNM"
    fp.seek(0)
    head = fp.read(64)
    Image.init()
    for fmt, (_, accept) in sorted(Image.OPEN.items()):
        try:
            if fmt not in FORMATS and _signature(accept, head):
                return f"{label}: {fmt} images are not accepted ({supported}); save it as PNG"
        except Exception:  # a plugin's signature check, on odd bytes: not this format
            continue
    return f"{label}: not an image ({supported})"


def _open_regular(path: str | os.PathLike[str], label: str) -> io.BufferedReader:
    """`path` opened for reading, if it is a regular file; a FIFO, socket or device is refused.

    Opened without blocking and checked on the open descriptor (no race with a rename): a
    plain open() of a FIFO waits forever for a writer."""
    try:
        return open_regular(path)
    except NotRegularFile as e:
        raise NotAnImageError(f"{label}: {e.strerror}; give an image file") from None
    except OSError as e:
        raise ImageError(f"{label}: cannot read file ({e.strerror or e})") from None


def plan_decode(img: Image.Image, label: str) -> Footprint:
    """Check an opened (not yet decoded) image's declared size against the limits, set JPEG's
    reduced-size decoding, and return :func:`decode_cost`'s estimate of the peak bytes.

    Only the first frame is ever decoded, so only its size counts (Pillow reads the first
    frame's header when it opens a GIF or TIFF, and grows the GIF's size to fit that frame).
    A TIFF's tile is decoded whole into a buffer of its own, so its declared tile size counts
    too (a 64x64 TIFF may declare one 16384x16384 tile)."""
    w, h = img.size
    _check_size(w, h, label)
    img.seek(0)
    if w * h > WORK_PIXELS:
        # JPEG only (a no-op elsewhere): libjpeg decodes at 1/2, 1/4 or 1/8 scale, and an RGB
        # one straight to grayscale (its Y channel), so the full-size image never exists.
        side = math.sqrt(w * h / WORK_PIXELS)
        img.draft("L", (max(1, math.ceil(w / side)), max(1, math.ceil(h / side))))
    dw, dh = img.size
    buffer = _tile_pixels(img)
    progressive = img.format in ("JPEG", "MPO") and bool(img.info.get("progressive"))
    coefficients = w * h if progressive else 0  # libjpeg keeps all of them, at full size
    if max(dw * dh, buffer, coefficients) > MAX_DECODED_PIXELS:
        kind = "progressive JPEG" if progressive else f"{img.format} image"
        raise ImageTooLargeError(
            f"{label}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels"
            + (f" in tiles of {buffer / 1e6:.1f} megapixels" if buffer > dw * dh else "")
            + f"; a {kind} is decoded at full size, and the limit for that is "
            f"{MAX_DECODED_PIXELS / 1e6:.0f} megapixels; scale it down first (a baseline "
            f"JPEG may have up to {MAX_PIXELS / 1e6:.0f}: it is decoded at reduced size)")
    return Footprint(w, h, _cost(img.mode, dw * dh, buffer, coefficients,
                                 img.format == "WEBP"))


def _tile_pixels(img: Image.Image) -> int:
    """A TIFF's declared tile (or strip) size in pixels: libtiff decodes one whole into a
    buffer of its own; 0 for other formats."""
    tags = getattr(img, "tag_v2", None)
    if img.format != "TIFF" or tags is None:
        return 0
    try:
        if 322 in tags or 323 in tags:  # TileWidth, TileLength
            return int(tags.get(322, 0)) * int(tags.get(323, 0))
        return img.size[0] * min(int(tags.get(278, img.size[1])), img.size[1])  # RowsPerStrip
    except (TypeError, ValueError):
        return MAX_DECODED_PIXELS + 1  # a tag that is not a number: refused as too large


def _cost(mode: str, pixels: int, buffer: int, coefficients: int, webp: bool) -> int:
    """Bytes at the peak of decoding `pixels` of `mode` and preprocessing them: Pillow's image
    (4 bytes a pixel but for 1, L and P; 2 for I;16; measured 16 for WebP), a TIFF's tile or
    strip buffer, a progressive JPEG's coefficients (up to 6 bytes a pixel), the conversion
    :func:`_shrink` makes at full size, and the float work on at most WORK_PIXELS. Measured
    peaks are below it (a 16 MP RGBA PNG or TIFF: 129 MB for an estimate of 156 MB)."""
    per = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if webp:  # libwebp's canvas and previous frame, Pillow's copy of it, then the image
        per = 16
    converts = pixels > WORK_PIXELS and (mode in ("1", "P", "PA") or mode.startswith("I;16"))
    return (per * (pixels + buffer) + 6 * coefficients + (4 * pixels if converts else 0)
            + WORK_BYTES * min(pixels, WORK_PIXELS) + BASE_BYTES)


def _decode(img: Image.Image) -> Image.Image:
    """The first frame of an image :func:`plan_decode` has accepted, decoded and averaged down
    to about WORK_PIXELS."""
    img.load()
    small = _shrink(img)
    return img.copy() if small is img else small


def _shrink(img: Image.Image) -> Image.Image:
    """`img`, averaged by a whole factor down to about WORK_PIXELS (itself if small enough).

    ``reduce`` averages pixel values, so palette indices are first made colours and 16-bit
    grayscale is scaled to 0-255 (as :func:`to_grayscale` would); RGBA and LA are averaged
    premultiplied by Pillow, so transparency is composited right afterwards."""
    w, h = img.size
    factor = math.ceil(math.sqrt(w * h / WORK_PIXELS))
    if factor <= 1:
        return img
    if img.mode.startswith("I;16"):
        small = img.convert("I").reduce(factor)
        return Image.fromarray(np.asarray(small, np.float32) / np.float32(257.0))  # mode F
    if img.mode in ("P", "PA"):
        transparent = img.mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "L")
    elif img.mode == "1":
        img = img.convert("L")
    return img.reduce(factor)


def to_grayscale(img: Image.Image, name: str = "image") -> np.ndarray:
    """Any PIL image -> float64 (H, W) in [0, 255], transparency composited on white.

    A mode Pillow cannot convert (LAB, say) is an :class:`UnsupportedImageError` naming it."""
    try:
        return _to_grayscale(img, name)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, SyntaxError, EOFError) as e:
        raise UnsupportedImageError(
            f"{name}: unsupported image mode {img.mode} (cannot convert it to grayscale: {e}); "
            "save it as grayscale or RGB") from None


def _to_grayscale(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():  # a float TIFF (mode F) can hold NaN or Infinity
            raise ImageError(f"{name}: the image holds non-finite values (NaN or Infinity)")
        if mode.startswith("I;16"):
            return arr / 257.0
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 255:
            return arr
        return (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    if (mode == "P" and "transparency" in img.info) or mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.float64)


def decode_gray(img: Image.Image, name: str = "image") -> tuple[np.ndarray, Footprint]:
    """A PIL image opened lazily or loaded -> its grey levels (:func:`to_grayscale`), decoded
    within the limits (:func:`plan_decode`), and its declared size (the decoded one may be
    smaller: positions scale by ``footprint.width / gray.shape[1]``)."""
    footprint = plan_decode(img, name)
    decoded = _decode(img)
    try:
        return to_grayscale(decoded, name), footprint
    finally:
        decoded.close()


def read_gray(source: str | os.PathLike[str] | bytes, name: str | None = None
              ) -> tuple[np.ndarray, Footprint]:
    """An image file (path or bytes) -> :func:`decode_gray`'s grey levels and declared size."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    with _opened(source, label) as img:
        return decode_gray(img, label)
