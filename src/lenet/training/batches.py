"""The digits on the device, and every training batch a gather from them.

No DataLoader and no per-sample Python in the hot path: the digits are loaded once as uint8,
preprocessed once on the device (or per batch when distortions are on), and every batch is an
index into that tensor (:meth:`Data.batch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lenet import data
from lenet.config import TrainConfig, val_count
from lenet.data.distort import Distortion
from lenet.data.realistic import Realistic
from lenet.data.transforms import Preprocessing
from lenet.training.result import TrainingError


@dataclass
class Split:
    """A split on the device: uint8 digits, and their preprocessed float inputs when fixed."""

    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64
    inputs: torch.Tensor | None = None  # (N, 1, H, W) float, absent when distorting per batch

    @property
    def x(self) -> torch.Tensor:
        """The preprocessed inputs (validation and test always have them)."""
        if self.inputs is None:
            raise TrainingError("this split is preprocessed per batch (distortions are on)")
        return self.inputs


def load_splits(cfg: TrainConfig, device: torch.device) -> tuple[Split, Split | None, Split]:
    """Train, optional validation (seeded, carved from the training set) and test splits."""
    train_x, train_y = data.load(cfg.dataset, "train", data_dir=cfg.data_dir)
    test_x, test_y = data.load(cfg.dataset, "test", data_dir=cfg.data_dir)
    val = None
    held = val_count(cfg, len(train_y))
    if cfg.val_fraction and held == 0:
        raise TrainingError(f"val_fraction {cfg.val_fraction:g} of {len(train_y)} training "
                            "digits holds out none; use a larger fraction")
    if held:
        if held >= len(train_y):
            raise TrainingError(f"a validation split of {held} leaves no training data "
                                f"({len(train_y)} training digits)")
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed))
        val_idx, train_idx = order[:held].sort().values, order[held:].sort().values
        val = Split(train_x[val_idx].to(device), train_y[val_idx].to(device))
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    if cfg.train_subset:
        train_x, train_y = train_x[:cfg.train_subset], train_y[:cfg.train_subset]
    if cfg.test_subset:
        test_x, test_y = test_x[:cfg.test_subset], test_y[:cfg.test_subset]
    return Split(train_x.to(device), train_y.to(device)), val, Split(test_x.to(device),
                                                                       test_y.to(device))


@dataclass
class Data:
    """The splits on the device, and how a training batch is made from them."""

    train: Split
    val: Split | None
    test: Split
    prep: Preprocessing
    # Per-batch distortions (the inputs are then made per batch): affine, or for real input.
    distort: Distortion | Realistic | None
    channels_last: bool

    def batch(self, idx: torch.Tensor, augment: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.distort is None:
            x = self.train.x.index_select(0, idx)  # several times faster than inputs[idx]
        else:
            x = self.prep(self.distort(self.train.images[idx], augment))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.train.labels[idx]

    def sample(self, gens: dict[str, torch.Generator], count: int = 500
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` random training digits for an :class:`~lenet.training.optim.EpochHook`."""
        split = self.train
        idx = torch.randperm(len(split.labels), generator=gens["order"])[:count]
        idx = idx.to(split.labels.device)
        if self.distort is None:
            return split.x[idx], split.labels[idx]
        return self.prep(self.distort(split.images[idx], gens["augment"])), split.labels[idx]

    def steps_per_epoch(self, batch_size: int, world: int) -> int:
        n = len(self.train.labels)
        steps = math.ceil(n / batch_size)
        if 0 < n % batch_size < world:
            # A last global batch smaller than the number of ranks would leave some rank an
            # empty shard: a NaN mean loss, poisoned into every rank by DDP's gradient average.
            # Those few digits sit the epoch out (a new permutation brings them back next epoch).
            steps -= 1
        if steps == 0:
            raise TrainingError(f"{n} training digits cannot be shared among {world} "
                                f"processes; use more data or fewer processes (--nproc)")
        return steps


def load_data(cfg: TrainConfig, prep: Preprocessing, device: torch.device) -> Data:
    train_split, val_split, test_split = load_splits(cfg, device)
    distort: Distortion | Realistic | None = None
    if cfg.realistic:
        distort = Realistic()
    elif cfg.distort:
        distort = Distortion()
    else:
        train_split.inputs = prep(train_split.images)
    for split in (val_split, test_split):
        if split is not None:
            split.inputs = prep(split.images)
    return Data(train_split, val_split, test_split, prep, distort, cfg.channels_last)
