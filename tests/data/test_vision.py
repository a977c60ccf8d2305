"""The torchvision-style datasets: a torchvision MNIST loop runs with only the import changed."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lenet import data
from lenet.data import (
    MNIST,
    Compose,
    DatasetError,
    FashionMNIST,
    Normalize,
    ToTensor,
    get_dataset,
    list_datasets,
)

MEAN, STD = 0.1307, 0.3081


def to_tensor_and_normalize(img: Image.Image) -> torch.Tensor:
    """What a torchvision user's ``Compose([ToTensor(), Normalize(...)])`` does, written out."""
    x = torch.from_numpy(np.array(img, np.uint8, copy=True)).float().div(255).unsqueeze(0)
    return (x - MEAN) / STD


def test_torchvision_style_loop_matches_load(mnist_ready: None) -> None:
    loader = DataLoader(MNIST(train=False, transform=to_tensor_and_normalize), batch_size=256)
    images, labels = data.load("mnist", "test")
    batches = 0
    for i, (x, y) in zip(range(3), loader, strict=False):
        rows = slice(i * 256, (i + 1) * 256)
        assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
        assert y.dtype == torch.int64
        assert torch.equal(y, labels[rows])
        torch.testing.assert_close(x, (images[rows].float().div(255).unsqueeze(1) - MEAN) / STD)
        batches += 1
    assert batches == 3


def test_lenet_transforms_equal_the_torchvision_ones(mnist_ready: None) -> None:
    ours = MNIST(train=False, transform=Compose([ToTensor(), Normalize((MEAN,), (STD,))]))
    theirs = MNIST(train=False, transform=to_tensor_and_normalize)
    for i in (0, 1, 9999):
        torch.testing.assert_close(ours[i][0], theirs[i][0])
        assert ours[i][1] == theirs[i][1]


def test_items_attributes_and_target_transform(mnist_ready: None) -> None:
    test = MNIST(train=False, target_transform=lambda t: t + 100)
    images, labels = data.load("mnist", "test")
    image, target = test[5]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28)
    assert np.array_equal(np.asarray(image), images[5].numpy())
    assert target == int(labels[5]) + 100 and isinstance(target, int)
    assert len(test) == 10_000 and test.train is False
    assert test.data.dtype == torch.uint8 and test.data.shape == (10_000, 28, 28)
    assert test.targets.dtype == torch.int64 and torch.equal(test.targets, labels)
    assert test.classes[0] == "0 - zero" and test.classes[9] == "9 - nine"
    assert test.class_to_idx["3 - three"] == 3
    assert isinstance(test, torch.utils.data.Dataset)


def test_repr_is_torchvisions(mnist_ready: None) -> None:
    test = MNIST(train=False, transform=Compose([ToTensor(), Normalize((MEAN,), (STD,))]))
    assert repr(test) == "\n".join([
        "Dataset MNIST",
        "    Number of datapoints: 10000",
        f"    Root location: {data.default_data_dir()}",
        "    Split: Test",
        "    StandardTransform",
        "Transform: Compose(",
        "               ToTensor()",
        f"               Normalize(mean=({MEAN},), std=({STD},))",
        "           )",
    ])


def test_no_download_on_an_empty_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        MNIST(root=tmp_path, train=False, download=False)
    message = str(e.value)
    assert "\n" not in message
    assert "`lenet data fetch mnist --data-dir" in message and str(tmp_path) in message
    assert not (tmp_path / "mnist").exists()  # looked, created nothing


def test_registry_lists_and_builds(mnist_ready: None) -> None:
    assert list_datasets() == list(data.DATASETS) == ["mnist", "fashion-mnist"]
    test = get_dataset("mnist", train=False)
    assert type(test) is MNIST and len(test) == 10_000
    with pytest.raises(DatasetError, match="known datasets: mnist, fashion-mnist"):
        get_dataset("cifar10")


def test_fashion_mnist() -> None:
    if not data.info("fashion-mnist")["present"]:
        pytest.skip("Fashion-MNIST is not in the data dir (`lenet data fetch fashion-mnist`)")
    test = FashionMNIST(train=False, download=False)
    image, target = test[0]
    assert len(test) == 10_000 and isinstance(image, Image.Image) and 0 <= target < 10
    assert test.classes[0] == "T-shirt/top" and test.classes[9] == "Ankle boot"


def test_normalize_refuses_a_zero_std() -> None:
    with pytest.raises(ValueError, match="zero"):
        Normalize((0.5,), (0.0,))


def test_import_stays_light() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, lenet.data; "
         "print(sorted(m for m in ('torch', 'PIL') if m in sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- torchvision's layout
def torchvision_root(tmp_path: Path, name: str, folder: str, split: str,
                     gz: bool = False) -> Path:
    """A root laid out as torchvision's download leaves it: <root>/<folder>/raw/<files>, with
    the split's files (all four if gzipped), copied from lenet's data dir."""
    raw = tmp_path / "tv" / folder / "raw"
    raw.mkdir(parents=True)
    spec = data.datasets.get_spec(name)
    wanted = spec.files if gz else spec.split_files(split)
    for f in wanted:
        src = data.datasets.dataset_dir(name) / f.name
        if gz:
            with open(src, "rb") as i, gzip.open(raw / f"{f.name}.gz", "wb", compresslevel=1) as o:
                shutil.copyfileobj(i, o)
        else:
            shutil.copy(src, raw / f.name)
    return tmp_path / "tv"


def test_a_torchvision_root_is_read_in_place(mnist_ready: None, tmp_path: Path) -> None:
    root = torchvision_root(tmp_path, "mnist", "MNIST", "test")
    test = MNIST(root=root, train=False, download=False)
    images, labels = data.load("mnist", "test")
    assert torch.equal(test.data, images) and torch.equal(test.targets, labels)
    assert not (root / "mnist").exists()  # nothing copied: the files were used where they are


def test_a_torchvision_root_with_only_gz_files_is_installed_verified(mnist_ready: None,
                                                                     tmp_path: Path) -> None:
    root = torchvision_root(tmp_path, "mnist", "MNIST", "test", gz=True)
    test = MNIST(root=root, train=False, download=False)  # a local copy: no download needed
    assert torch.equal(test.targets, data.load("mnist", "test")[1])
    files = data.info("mnist", data_dir=root)["files"]  # gunzipped into root/mnist, verified
    assert files["t10k-images-idx3-ubyte"] == files["t10k-labels-idx1-ubyte"] == "ok"


def test_a_corrupt_torchvision_file_is_refused_by_the_pins(mnist_ready: None,
                                                          tmp_path: Path) -> None:
    root = torchvision_root(tmp_path, "mnist", "MNIST", "test")
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    blob[100] = (blob[100] + 1) % 10
    labels.write_bytes(bytes(blob))
    with pytest.raises(DatasetError) as e:
        MNIST(root=root, train=False, download=False)
    assert "torchvision folder" in str(e.value) and "is corrupt" in str(e.value)


def test_a_torchvision_fashion_mnist_root(tmp_path: Path) -> None:
    if not data.info("fashion-mnist")["present"]:
        pytest.skip("Fashion-MNIST is not in the data dir (`lenet data fetch fashion-mnist`)")
    root = torchvision_root(tmp_path, "fashion-mnist", "FashionMNIST", "test")
    test = FashionMNIST(root=root, train=False, download=False)
    assert torch.equal(test.targets, data.load("fashion-mnist", "test")[1])
