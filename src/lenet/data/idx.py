"""Reader for the IDX format of the MNIST files, raw or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. The reader checks
every one of those and the exact byte length, because a truncated or mixed-up download would
otherwise show up much later as a baffling shape error or, worse, as silently wrong data.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from lenet.errors import DatasetError
from lenet.storage import atomic
from lenet.storage.regular import open_regular

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
# The most bytes a file may declare (header and values): five times MNIST's largest file
# (47 MB), so a forged header or a gzip bomb is refused before anything that size is allocated
# or decompressed. A caller reading larger IDX files passes its own ``max_bytes``.
MAX_BYTES = 256 << 20
_HEADER_MAX = 4 + 4 * 255  # the magic number and at most 255 dimensions
_CHUNK = 1 << 20


def read_idx(path: str | os.PathLike[str], *, fix: str = DEFAULT_FIX,
             max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (raw, or gzip by content) into a native-endian numpy array.

    ``fix`` is the advice appended to every error, so a caller that knows which dataset the
    file belongs to can name the exact command that repairs it. A file declaring more than
    ``max_bytes`` (default :data:`MAX_BYTES`) is refused from its header, before its values are
    read or decompressed. Raises :class:`DatasetError` naming the file and what is wrong with it.
    """
    path = Path(path)
    data, dtype, shape, offset = _read_checked(path, fix, max_bytes)
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
        with _open_idx(path) as f:
            head = f.read(_HEADER_MAX)
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no such file; {fix}") from e
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read: {_why(e)}; {fix}") from e
    dtype, shape, _ = _parse_header(head, path, fix)
    return dtype, shape


def _open_idx(path: Path) -> io.BufferedIOBase:
    """The file's IDX bytes as a stream: gunzipped when it starts with gzip's magic number."""
    f = open_regular(path)
    try:
        gz = f.read(2) == GZIP_MAGIC
        f.seek(0)
    except BaseException:
        f.close()
        raise
    # GzipFile closes only what it opened: the file goes with it through this wrapper.
    return _GunzipClosing(f) if gz else f


class _GunzipClosing(gzip.GzipFile):
    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _read_checked(path: Path, fix: str, max_bytes: int
                  ) -> tuple[bytearray, np.dtype, tuple[int, ...], int]:
    """The file's bytes, its dtype, shape and data offset; the size checked against the header
    before the values are read, so a lying header costs no memory."""
    try:
        with _open_idx(path) as f:
            head = f.read(_HEADER_MAX)
            dtype, shape, offset = _parse_header(head, path, fix)
            expected = offset + math.prod(shape) * dtype.itemsize
            # Sides counted as at least 1: numpy refuses (0, 2**32, 2**32) too, and no real
            # file has one empty side and others that long.
            span = offset + math.prod(max(n, 1) for n in shape) * dtype.itemsize
            if span > max_bytes:
                raise DatasetError(
                    f"{path}: IDX file declares shape {shape} of {dtype.name}, more than the "
                    f"limit of {max_bytes} bytes (not an MNIST-sized file; pass max_bytes= to "
                    f"read larger ones); {fix}")
            if isinstance(f, gzip.GzipFile):
                data = _read_up_to(f, bytearray(head), expected + 1)
                length = len(data)  # at most expected + 1: the rest is never inflated
            else:  # its size alone tells a wrong file: then nothing is read
                length = os.fstat(f.fileno()).st_size
                data = _read_plain(f, head, expected) if length == expected else bytearray()
                length = len(data) if length == expected else length
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no such file; {fix}") from e
    except (OSError, EOFError, zlib.error) as e:  # includes gzip.BadGzipFile
        raise DatasetError(f"{path}: cannot read: {_why(e)}; {fix}") from e
    if length != expected:
        what = "truncated" if length < expected else "has extra bytes at the end"
        gunzipped_past_end = length > expected and bool(data)
        size = f"over {expected} bytes" if gunzipped_past_end else f"{length} bytes"
        raise DatasetError(
            f"{path}: corrupt IDX file: {what} ({size}, expected {expected} for "
            f"shape {shape} of {dtype.name}); {fix}")
    return data, dtype, shape, offset


def _read_plain(f: io.BufferedIOBase, head: bytes, expected: int) -> bytearray:
    """An uncompressed file of the right size in one read into one buffer: a bytearray, so that
    the numpy array is writable and torch.from_numpy takes it without a copy or a warning."""
    buf = bytearray(expected)
    buf[:len(head)] = head
    got = len(head) + (f.readinto(memoryview(buf)[len(head):]) or 0)
    del buf[got:]  # the file shrank while we read it
    return buf


def _read_up_to(f: io.BufferedIOBase, data: bytearray, limit: int) -> bytearray:
    """Decompressed bytes, in chunks, until `limit` or the end: a truncated file allocates only
    what it holds, and a bomb is decompressed no further than one byte past its declared size."""
    del data[limit:]
    while len(data) < limit and (chunk := f.read(min(_CHUNK, limit - len(data)))):
        data += chunk
    return data


def _why(e: BaseException) -> str:
    return (e.strerror or str(e)) if isinstance(e, OSError) else str(e)


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
    return atomic.write_bytes(path, payload)
