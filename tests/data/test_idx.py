"""The IDX reader: valid files of every dtype round-trip; every kind of damage is a DatasetError."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet.data.idx import IDX_DTYPES, MAX_BYTES, read_idx, read_idx_header, write_idx
from lenet.errors import DatasetError


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``array`` (optionally with a forged dtype code)."""
    be = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    codes = {dt: c for c, dt in IDX_DTYPES.items()}
    header = bytes([0, 0, code if code is not None else codes[np.dtype(be)], array.ndim])
    header += b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(be).tobytes()


VALID = [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-128, -1, 0, 127], dtype=np.int8),
    np.array([[-32768, 1], [2, 32767]], dtype=np.int16),
    np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32).reshape(3, 1),
    np.array([1.5, -0.25, np.inf], dtype=np.float32),
    np.linspace(-1, 1, 12, dtype=np.float64).reshape(2, 2, 3),
    np.zeros((0, 28, 28), dtype=np.uint8),
]


@pytest.mark.parametrize("array", VALID, ids=lambda a: f"{a.dtype}{a.shape}")
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    path = write_idx(tmp_path / f"data-idx{suffix}", array)
    got = read_idx(path)
    assert got.dtype == array.dtype.newbyteorder("=")
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert read_idx_header(path) == (IDX_DTYPES[idx_bytes(array)[2]], array.shape)


def test_hand_written_big_endian_bytes(tmp_path: Path) -> None:
    # Written without write_idx, so a symmetric bug in reader and writer cannot hide.
    path = tmp_path / "f"
    path.write_bytes(b"\x00\x00\x0b\x01\x00\x00\x00\x02\x01\x02\xff\xfe")
    np.testing.assert_array_equal(read_idx(path), np.array([0x0102, -2], dtype=np.int16))


def test_gzip_detected_by_content_without_gz_suffix(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_uint8_result_is_writable_for_zero_copy_torch(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.ones((3, 28, 28), dtype=np.uint8))
    assert read_idx(path).flags.writeable


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))

BAD = {
    "empty": (b"", "truncated"),
    "short header": (b"\x00\x00", "truncated"),
    "wrong magic": (b"\x01" + GOOD[1:], "magic"),
    "wrong magic 2nd byte": (b"\x00\x07" + GOOD[2:], "magic"),
    "unknown dtype code": (GOOD[:2] + b"\x0a" + GOOD[3:], "dtype code 0x0A"),
    "zero dimensions": (b"\x00\x00\x08\x00", "zero dimensions"),
    "dims cut off": (GOOD[:9], "inside the header"),
    "truncated data": (GOOD[:-1], "truncated"),
    "extra bytes": (GOOD + b"\x00", "extra bytes"),
    "huge declared shape": (b"\x00\x00\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", "limit"),
    "an empty side, the others huge": (b"\x00\x00\x08\x03\x00\x00\x00\x00" + b"\xff" * 8, "limit"),
    "declared larger than held": (b"\x00\x00\x08\x01\x00\x01\x00\x00" + b"\x00" * 10, "truncated"),
}


@pytest.mark.parametrize("name", list(BAD))
@pytest.mark.parametrize("gz", [False, True])
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, name: str, gz: bool) -> None:
    payload, what = BAD[name]
    path = tmp_path / ("broken-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DatasetError) as e:
        read_idx(path, fix="delete it and run `lenet data fetch mnist`")
    message = str(e.value)
    assert str(path) in message
    assert what in message
    assert "lenet data fetch mnist" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "nope")


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(GOOD)[:-6])
    with pytest.raises(DatasetError, match=r"x\.gz"):
        read_idx(path)


def test_header_of_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DatasetError, match="magic"):
        read_idx_header(path)


# --------------------------------------------------------------------------- fuzzing
# Arbitrary and mutated IDX bytes, plain and gzipped: read_idx gives an array or a DatasetError
# naming the file, never anything else (no MemoryError, no numpy error, no hang). The examples
# are small, so each takes well under a millisecond; the "fuzz" profile decides how many.
FUZZ_SEED = idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
FUZZ_SEED_GZ = gzip.compress(FUZZ_SEED, mtime=0)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` cut short, with one byte changed, with a run of bytes inserted, or with bytes
    appended: the damage a download or a disk does, and a forger's edits."""
    n = len(seed)
    return st.one_of(
        st.integers(0, n).map(lambda k: seed[:k]),
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
            lambda t: seed[:t[0]] + bytes([t[1]]) + seed[t[0] + 1:]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
            lambda t: seed[:t[0]] + t[1] + seed[t[0]:]),
        st.binary(min_size=1, max_size=16).map(lambda b: seed + b),
    )


def check_read(path: Path, max_bytes: int | None = None) -> None:
    try:
        array = read_idx(path) if max_bytes is None else read_idx(path, max_bytes=max_bytes)
    except DatasetError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert isinstance(array, np.ndarray)
        assert array.nbytes <= (max_bytes or MAX_BYTES)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=64), mutated(FUZZ_SEED),
                      st.binary(max_size=32).map(lambda b: FUZZ_SEED[:4] + b)),
       gz=st.booleans())
def test_fuzz_idx_arbitrary_bytes(tmp_path: Path, data: bytes, gz: bool) -> None:
    path = tmp_path / "fuzz"
    path.write_bytes(gzip.compress(data)[: len(data) + 10] if gz else data)
    check_read(path)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated(FUZZ_SEED_GZ))
def test_fuzz_idx_mutated_gzip(tmp_path: Path, data: bytes) -> None:
    """A damaged gzip stream (header, deflate data, CRC, length): DatasetError or the array."""
    path = tmp_path / "fuzz"
    path.write_bytes(data)
    check_read(path)


@pytest.mark.fuzz
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.sampled_from([*IDX_DTYPES, 0x00, 0x0A, 0xFF]),
       shape=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 8), min_size=0, max_size=6),
       body=st.binary(max_size=64), gz=st.booleans(), max_bytes=st.sampled_from([None, 64]))
def test_fuzz_idx_forged_headers(tmp_path: Path, code: int, shape: list[int], body: bytes,
                                 gz: bool, max_bytes: int | None) -> None:
    """Any dtype code and any declared shape (up to 2^32 per side) with a short body: refused
    from the header, never allocated; read_idx_header agrees with what read_idx accepts."""
    raw = bytes([0, 0, code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape) + body
    path = tmp_path / ("fuzz.gz" if gz else "fuzz")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    check_read(path, max_bytes)
    try:
        dtype, declared = read_idx_header(path)
    except DatasetError:
        return
    assert declared == tuple(shape) and dtype == IDX_DTYPES[code]
