"""Decompression bombs, built by hand in a few milliseconds each: small files that declare (or
hide) huge images, in the formats Pillow opens. Shared by test_decoding and test_serve."""

from __future__ import annotations

import functools
import struct
import zlib

ZEROS = bytes(1 << 20)


def _deflated(size: int) -> bytes:
    """`size` zero bytes, deflated (about 1,000 : 1), compressed without ever holding them."""
    z = zlib.compressobj(9)
    out = [z.compress(ZEROS) for _ in range(size >> 20)]
    out.append(z.compress(bytes(size & ((1 << 20) - 1))))
    return b"".join(out) + z.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=8)
def png(w: int, h: int) -> bytes:
    """A valid 8-bit grayscale PNG of w x h black pixels (rows of zeros, filter 0)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", _deflated((w + 1) * h)) + _chunk(b"IEND", b""))


def ico(inner: bytes, declared: int = 0) -> bytes:
    """An ICO whose one entry declares `declared` px square (0: 256) but holds `inner`."""
    entry = struct.pack("<BBBBHHII", declared, declared, 0, 0, 1, 32, len(inner), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + inner


def _ifd(tags: dict[int, tuple[int, int]], next_at: int = 0) -> bytes:
    """A little-endian TIFF IFD of SHORT (3) / LONG (4) single values: {tag: (type, value)}."""
    out = struct.pack("<H", len(tags))
    for tag in sorted(tags):
        kind, value = tags[tag]
        out += struct.pack("<HHI", tag, kind, 1)
        out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    return out + struct.pack("<I", next_at)


def _tiff_tags(w: int, h: int, data_at: int, data_len: int, tile: int = 0
               ) -> dict[int, tuple[int, int]]:
    tags = {256: (4, w), 257: (4, h), 258: (3, 8), 259: (3, 8), 262: (3, 1), 277: (3, 1)}
    if tile:  # one tile: TileWidth, TileLength, TileOffsets, TileByteCounts
        tags.update({322: (4, tile), 323: (4, tile), 324: (4, data_at), 325: (4, data_len)})
    else:  # one strip
        tags.update({273: (4, data_at), 278: (4, h), 279: (4, data_len)})
    return tags


def tiff(w: int, h: int, tile: int = 0, second: tuple[int, int] | None = None) -> bytes:
    """A deflated 8-bit grayscale TIFF of w x h zeros in one strip (or one `tile` x `tile`
    tile, filled whole), and optionally a second frame of `second` = (w, h)."""
    frames = [(w, h, tile), *([(*second, 0)] if second else [])]
    datas = [_deflated((t * t) if t else fw * fh) for fw, fh, t in frames]
    out, at = bytearray(b"II*\x00" + struct.pack("<I", 8)), 8
    for i, ((fw, fh, t), data) in enumerate(zip(frames, datas, strict=True)):
        tags = _tiff_tags(fw, fh, 0, len(data), t)
        data_at = at + 2 + 12 * len(tags) + 4
        next_at = data_at + len(data) if i + 1 < len(frames) else 0
        out += _ifd(_tiff_tags(fw, fh, data_at, len(data), t), next_at) + data
        at = next_at
    return bytes(out)


def _gif_lzw_zeros(pixels: int) -> bytes:
    """GIF image data (minimum code size 2) for `pixels` of colour 0, compressed as LZW does
    at best: each code one pixel longer than the last (about 1,400 : 1), as a real bomb is."""
    clear, end = 4, 5
    codes: list[tuple[int, int]] = []  # (code, width), widths as the decoder will read them
    width, nxt, prev, left = 3, 6, 0, pixels
    codes.append((clear, width))
    while left:
        size = min(prev + 1, left)
        code = 0 if size == 1 else size + 4  # the string of n zeros is code n + 4 (n >= 2)
        codes.append((code, width))
        if prev:  # the decoder adds an entry for every code but the first after a clear
            nxt += 1
            if nxt == 1 << width and width < 12:
                width += 1
        prev, left = size, left - size
        if nxt >= 4000 and left:
            codes.append((clear, width))
            width, nxt, prev = 3, 6, 0
    codes.append((end, width))
    bits = nbits = 0
    out = bytearray()
    for code, w in codes:
        bits |= code << nbits
        nbits += w
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + out[i:i + 255]
                      for i in range(0, len(out), 255))
    return b"\x02" + blocks + b"\x00"


def gif(screen: tuple[int, int], frames: list[tuple[int, int]]) -> bytes:
    """A GIF with a logical screen of `screen` and one frame per (w, h) in `frames`."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    for w, h in frames:
        out += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + _gif_lzw_zeros(w * h)
    return out + b";"


def webp(w: int, h: int) -> bytes:
    """A VP8L (lossless) WebP header declaring w x h (the bitstream itself is nonsense)."""
    bits = (w - 1) | ((h - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5 + 8) + b"\x2f" + struct.pack("<I", bits) + bytes(8)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def bmp(w: int, h: int) -> bytes:
    """An 8-bit RLE BMP declaring w x h, its pixel data one end-of-bitmap marker."""
    palette = bytes(4 * 256)
    data = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + header + palette \
        + data


def psd(w: int, h: int) -> bytes:
    """A PSD header declaring w x h, 1 channel, 8 bits, grayscale; no image data."""
    return (b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, h, w, 8, 1)
            + struct.pack(">I", 0) * 3 + struct.pack(">H", 0))
