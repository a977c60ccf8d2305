"""The IDX reader: valid files of every dtype round-trip; every kind of damage is a DatasetError."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet.data.idx import IDX_DTYPES, read_idx, read_idx_header, write_idx
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
    "huge declared shape": (b"\x00\x00\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"),
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


FUZZ_SEED = idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=64),
    st.integers(0, len(FUZZ_SEED)).map(lambda n: FUZZ_SEED[:n]),
    st.tuples(st.integers(0, len(FUZZ_SEED) - 1), st.integers(0, 255)).map(
        lambda t: FUZZ_SEED[:t[0]] + bytes([t[1]]) + FUZZ_SEED[t[0] + 1:]),
    st.binary(max_size=32).map(lambda b: FUZZ_SEED[:4] + b),
), gz=st.booleans())
def test_fuzz_only_ever_raises_dataset_error(tmp_path: Path, data: bytes, gz: bool) -> None:
    path = tmp_path / "fuzz"
    path.write_bytes(gzip.compress(data)[: len(data) + 10] if gz else data)
    try:
        array = read_idx(path)
    except DatasetError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(array, np.ndarray)
