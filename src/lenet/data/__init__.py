"""Datasets: IDX reading, verified fetching from mirrors or registries, fast loading.

>>> images, labels = load("mnist", "train")   # uint8 (60000, 28, 28), int64 (60000,)
>>> test = MNIST(train=False, transform=ToTensor())   # torchvision-style, see lenet.data.vision
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lenet.data.datasets import DATASETS, default_data_dir, fetch, info
from lenet.data.idx import read_idx
from lenet.errors import DatasetError

if TYPE_CHECKING:
    from lenet.data.tensors import load
    from lenet.data.vision import (
        MNIST,
        Compose,
        FashionMNIST,
        Normalize,
        ToTensor,
        get_dataset,
        list_datasets,
    )

# The names that import torch (and PIL), which `import lenet.data` (reached from the CLI's
# `lenet data`) must not: they load on first use (PEP 562), from the module named.
_LAZY = {"load": "lenet.data.tensors",
         **dict.fromkeys(("MNIST", "FashionMNIST", "Compose", "Normalize", "ToTensor",
                          "get_dataset", "list_datasets"), "lenet.data.vision")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["DATASETS", "MNIST", "Compose", "DatasetError", "FashionMNIST", "Normalize",
           "ToTensor", "default_data_dir", "fetch", "get_dataset", "info", "list_datasets", "load",
           "read_idx"]
