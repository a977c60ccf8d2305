"""A dataset split as torch tensors, the form training and evaluation take.

Apart from :mod:`lenet.data.datasets` so that ``import lenet.data`` loads no torch (the CLI's
`lenet data fetch|info`): ``lenet.data.load`` is this module's, imported on first use.
"""

from __future__ import annotations

import os

import torch

from lenet.data.datasets import DatasetSpec, read_split


def load(name: str | DatasetSpec, split: str, data_dir: str | os.PathLike[str] | None = None,
         fetch_missing: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, 28, 28) and labels as int64 (N,), fetching the files if missing
    (zero-copy views of the arrays :func:`lenet.data.datasets.read_split` reads).

    A file present but not matching its pin is refused with a :class:`lenet.errors.DatasetError`.
    """
    images, labels = read_split(name, split, data_dir, fetch_missing)
    return torch.from_numpy(images), torch.from_numpy(labels)
