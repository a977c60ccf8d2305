"""Reader for the IDX format of the MNIST files, raw or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. The reader checks
every one of those and the exact byte length, because a truncated or mixed-up download would
otherwise show up much later as a baffling shape error or, worse, as silently wrong data.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from lenet.errors import DatasetError

# IDX dtype code -> big-endian numpy dtype, from the format's definition (LeCun et al.).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_FIX = "delete it and fetch it again (e.g. `lenet data fetch mnist`)"


def read_idx(path: str | os.PathLike[str], *, fix: str = DEFAULT_FIX) -> np.ndarray:
    """Read an IDX file (raw, or gzip by content) into a native-endian numpy array.

    ``fix`` is the advice appended to every error, so a caller that knows which dataset the
    file belongs to can name the exact command that repairs it.
    Raises :class:`DatasetError` naming the file and what is wrong with it.
    """
    path = Path(path)
    data = _read_bytes(path, fix)
    dtype, shape, offset = _parse_header(data, path, fix)
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has extra bytes at the end"
        raise DatasetError(
            f"{path}: corrupt IDX file: {what} ({len(data)} bytes, expected {expected} for "
            f"shape {shape} of {dtype.name}); {fix}")
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    # Torch and most numpy code want native byte order; single bytes need no conversion (and
    # no copy: the uint8 images go straight to torch.from_numpy).
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx_header(path: str | os.PathLike[str], *,
                    fix: str = DEFAULT_FIX) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape an IDX file declares, without reading (or checking) its values."""
    path = Path(path)
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as f:
            head = f.read(4 + 4 * 255)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read: {e}; {fix}") from e
    dtype, shape, _ = _parse_header(head, path, fix)
    return dtype, shape


def _read_bytes(path: Path, fix: str) -> bytearray:
    # A bytearray (not bytes) makes the numpy array writable, so torch.from_numpy takes it
    # without a copy and without its "non-writable array" warning.
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                return bytearray(f.read())
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)
            got = f.readinto(buf)
            if got != size:  # the file shrank while we read it
                del buf[got:]
            return buf
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no such file; {fix}") from e
    except (OSError, EOFError, zlib.error) as e:  # includes gzip.BadGzipFile
        raise DatasetError(f"{path}: cannot read: {e}; {fix}") from e


def _is_gzip(path: Path) -> bool:
    """Decide by content, not by name: IDX data starts with 00 00, gzip with 1f 8b."""
    if path.suffix == ".gz":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False  # let the real read report the problem


def _parse_header(data: bytes | bytearray, path: Path,
                  fix: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate the magic number and dimensions; return (dtype, shape, data offset)."""
    if len(data) < 4:
        raise DatasetError(
            f"{path}: corrupt IDX file: truncated ({len(data)} bytes, the header alone is 4); "
            f"{fix}")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: bad magic number {bytes(data[:4]).hex()} (must start "
            f"with two zero bytes); {fix}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(
            f"{path}: not an IDX file: unknown dtype code 0x{code:02X} (known: {known}); {fix}")
    if ndim == 0:
        raise DatasetError(f"{path}: corrupt IDX file: zero dimensions; {fix}")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(
            f"{path}: corrupt IDX file: truncated inside the header ({len(data)} bytes, "
            f"{ndim} dimensions need {offset}); {fix}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return IDX_DTYPES[code], shape, offset


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped if the name ends in .gz); for tests and tools."""
    path = Path(path)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
