"""torchvision-style datasets over lenet's verified files: code written for torchvision runs with
the import changed.

>>> from lenet.data import MNIST, Compose, ToTensor, Normalize
>>> test = MNIST(train=False, transform=Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]))
>>> loader = torch.utils.data.DataLoader(test, batch_size=256)

Like torchvision's, ``__getitem__`` turns one digit into a PIL image and runs the user's transform
on it, one sample at a time. That is the compatible path, not the fast one: ``lenet train`` keeps
the whole uint8 dataset on the device and preprocesses a batch in one go (see
:mod:`lenet.data.transforms`); ``.data`` and ``.targets`` give direct access to the same tensors.

``root`` is lenet's data dir (files in ``<root>/<name>/``); a root that torchvision downloaded
into works too: its ``<root>/MNIST/raw/`` (``FashionMNIST/raw/``) files, raw or gzipped, are
used when lenet's folder lacks them, verified by the same pins. ``download`` defaults to True,
as everywhere in lenet.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lenet.data.datasets import dataset_dir, default_data_dir, get_spec, torchvision_dir
from lenet.data.tensors import load
from lenet.errors import DatasetError

Transform = Callable[[Any], Any]

_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class MNIST(Dataset[tuple[Any, Any]]):
    """The MNIST digits, with torchvision's constructor, attributes and item types.

    ``.data`` is uint8 (N, 28, 28), ``.targets`` int64 (N,), ``.classes`` torchvision's names.
    An item is ``(image, label)``: a PIL "L" image (or whatever ``transform`` makes of it) and an
    int (or whatever ``target_transform`` makes of it).
    """

    dataset: ClassVar[str] = "mnist"  # the name in lenet.data.DATASETS
    classes: ClassVar[list[str]] = [f"{i} - {name}" for i, name in enumerate(_DIGIT_NAMES)]
    _repr_indent: ClassVar[int] = 4

    def __init__(self, root: str | os.PathLike[str] | None = None, train: bool = True,
                 transform: Transform | None = None, target_transform: Transform | None = None,
                 download: bool = True) -> None:
        # Resolved here so that the error messages and repr name the directory really used.
        self.root = str(os.path.expanduser(root) if root is not None else default_data_dir())
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        split = "train" if train else "test"
        if not download and torchvision_dir(self.dataset, root) is None:
            _require_files(self.dataset, split, root)
        self.data, self.targets = load(self.dataset, split, root, fetch_missing=download)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        # As torchvision does it, so that PIL-based user transforms see the same image.
        image: Any = Image.fromarray(self.data[index].numpy())
        target: Any = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"

    def __repr__(self) -> str:
        """torchvision's text, including its only-first-line indent of the transforms."""
        body = [f"Number of datapoints: {len(self)}", f"Root location: {self.root}",
                *self.extra_repr().splitlines()]
        if self.transform is not None or self.target_transform is not None:
            body.append(self._transforms_repr())
        return "\n".join([f"Dataset {type(self).__name__}",
                          *(" " * self._repr_indent + line for line in body)])

    def _transforms_repr(self) -> str:
        lines = ["StandardTransform"]
        for head, t in (("Transform: ", self.transform),
                        ("Target transform: ", self.target_transform)):
            if t is not None:
                first, *rest = repr(t).splitlines()
                lines += [head + first, *(" " * len(head) + line for line in rest)]
        return "\n".join(lines)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and API with ten kinds of clothing."""

    dataset: ClassVar[str] = "fashion-mnist"
    classes: ClassVar[list[str]] = list(get_spec("fashion-mnist").classes)


def _require_files(name: str, split: str, root: str | os.PathLike[str] | None) -> None:
    """With ``download=False``, missing files are a one-line error naming the fetch command."""
    directory = dataset_dir(name, root)
    missing = [f.name for f in get_spec(name).split_files(split)
               if not (directory / f.name).exists()]
    if missing:
        flag = f" --data-dir {shlex.quote(str(root))}" if root else ""
        raise DatasetError(
            f"{name} {split} split not found in {directory} ({', '.join(missing)} missing) and "
            f"download=False; run `lenet data fetch {name}{flag}` or pass download=True")


_DATASETS: dict[str, type[MNIST]] = {"mnist": MNIST, "fashion-mnist": FashionMNIST}


def list_datasets() -> list[str]:
    """The names :func:`get_dataset` accepts (those of ``lenet.data.DATASETS``)."""
    return list(_DATASETS)


def get_dataset(name: str, **kwargs: Any) -> MNIST:
    """The dataset called ``name``, built with ``kwargs`` (root, train, transform, ...)."""
    try:
        cls = _DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           f"{', '.join(_DATASETS)}") from None
    return cls(**kwargs)


# Just enough of torchvision.transforms for the usual MNIST pipeline, with the same results.

class ToTensor:
    """PIL image or (H, W[, C]) array -> float (C, H, W); uint8 is scaled to [0, 1]."""

    def __call__(self, pic: Any) -> torch.Tensor:
        array = np.array(pic, copy=True)  # a copy: the tensor must not share the image's memory
        if array.dtype == np.bool_:  # PIL mode "1"
            array = array.astype(np.uint8) * 255
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.get_default_dtype()).div(255)
        return tensor

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std per channel of a (..., C, H, W) tensor, out of place."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        if any(s == 0 for s in np.atleast_1d(std)):
            raise ValueError(f"Normalize: std {std!r} has a zero, which divides by zero")
        self.mean, self.std = mean, std

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        return (tensor - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "\n".join(["Compose(", *(f"    {t}" for t in self.transforms), ")"])
