"""The baseline `lenet bench` measures lenet against: the tutorials' pipeline, re-created.

A Dataset that builds a PIL image per sample (as torchvision's MNIST does), ToTensor,
Normalize(0.5, 0.5), a shuffling DataLoader, batch 64, Adam, and the tutorials' LeNet-5 (the
"Paper Study" code); its time to 99 % runs the Paper Study recipe (Adam lr 0.01, StepLR(3, 0.1),
testing after each epoch) in a process of its own, so that data loading and start-up count.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lenet import data
from lenet.bench.hardware import run_json

TARGET = 0.99  # the test accuracy both sides' time-to-99 runs stop at
TRAIN_BATCH = 64  # the tutorials' batch; lenet's rows compare at the same one


def pil_dataset(images: Any, labels: Any) -> Any:
    """torchvision's MNIST with ``Compose([ToTensor(), Normalize((0.5,), (0.5,))])``, as the
    tutorials build it, re-created without torchvision (which this project cannot import).

    Per sample, as torchvision does it: the uint8 row becomes a PIL image; ToTensor copies it
    into a tensor, views it as (H, W, bands), permutes to (C, H, W), makes it contiguous and
    divides by 255; Normalize, an nn.Module, clones the tensor (it works out of place by
    default), turns mean and std into tensors, checks std for zeros, and subtracts and divides
    in place. Only torchvision's argument type checks and API-usage logging are left out.
    """
    class ToTensor:
        def __call__(self, pic: Any) -> torch.Tensor:
            img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
            img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
            img = img.permute((2, 0, 1)).contiguous()
            return img.to(dtype=torch.get_default_dtype()).div(255)

    class Normalize(nn.Module):
        def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
            super().__init__()
            self.mean, self.std = mean, std

        def forward(self, tensor: torch.Tensor) -> torch.Tensor:
            tensor = tensor.clone()
            mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
            std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
            if (std == 0).any():
                raise ValueError("std evaluated to zero, leading to division by zero")
            if mean.ndim == 1:
                mean = mean.view(-1, 1, 1)
            if std.ndim == 1:
                std = std.view(-1, 1, 1)
            return tensor.sub_(mean).div_(std)

    transforms: list[Callable[[Any], Any]] = [ToTensor(), Normalize((0.5,), (0.5,))]

    class PILMNIST(Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            img, target = images[i], int(labels[i])
            img = Image.fromarray(img.numpy(), mode="L")
            for t in transforms:  # transforms.Compose
                img = t(img)
            return img, target

    return PILMNIST()


def baseline_model() -> Any:
    """The tutorials' LeNet-5, as the "Paper Study" code writes it: conv, ReLU, then max-pool,
    in an nn.Module of its own. Not `lenet.models.create("lenet5")`, whose training-time
    forward is tuned, so that a speed-up of lenet5 can never flatter the baseline too."""
    class BaselineLeNet5(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
            self.s2 = nn.MaxPool2d(kernel_size=2, stride=2)
            self.c3 = nn.Conv2d(6, 16, kernel_size=5)
            self.s4 = nn.MaxPool2d(kernel_size=2, stride=2)
            self.c5 = nn.Linear(16 * 5 * 5, 120)
            self.f6 = nn.Linear(120, 84)
            self.output = nn.Linear(84, 10)

        def forward(self, x):
            x = self.s2(F.relu(self.c1(x)))
            x = self.s4(F.relu(self.c3(x)))
            x = x.view(-1, 16 * 5 * 5)
            x = F.relu(self.c5(x))
            x = F.relu(self.f6(x))
            return self.output(x)

    return BaselineLeNet5()


def setup(seed: int, train_subset: int, test_subset: int, batch_size: int = TRAIN_BATCH):
    """The baseline's model, Adam and its two DataLoaders, seeded."""
    torch.manual_seed(seed)
    tx, ty = data.load("mnist", "train")
    vx, vy = data.load("mnist", "test")
    if train_subset:
        tx, ty = tx[:train_subset], ty[:train_subset]
    if test_subset:
        vx, vy = vx[:test_subset], vy[:test_subset]
    train_loader = DataLoader(pil_dataset(tx, ty), batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(pil_dataset(vx, vy), batch_size=1000)
    model = baseline_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return model, optimizer, train_loader, test_loader


def train_epoch(model, optimizer, loader, max_batches: int = 0) -> tuple[float, int]:
    """One epoch (or its first `max_batches`) of the baseline's loop: seconds and images seen."""
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for k, (inputs, targets) in enumerate(loader):
        if max_batches and k >= max_batches:
            break
        loss = criterion(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(targets)
    return time.perf_counter() - t0, seen


def accuracy(model, loader) -> float:
    """The baseline's test pass."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += int((model(inputs).argmax(1) == targets).sum())
            total += len(targets)
    return correct / total


def epoch_speed(epochs: int, train_subset: int = 0, test_subset: int = 0,
                max_batches: int = 0) -> dict[str, float]:
    """The baseline's training speed over `epochs` epochs: the first is warm-up, as on lenet's
    side, and the fastest later epoch is reported."""
    model, optimizer, loader, _ = setup(0, train_subset, test_subset)
    runs = [train_epoch(model, optimizer, loader, max_batches) for _ in range(max(1, epochs))]
    ips = [seen / sec for sec, seen in runs]
    n = len(loader.dataset)
    best = max(ips[1:] or ips)
    return {"seconds_per_epoch": n / best, "images_per_s": best,
            "first_epoch_seconds": n / ips[0], "epochs": len(runs)}


def time_to_target(seed: int, max_epochs: int, train_subset: int = 0,
                   test_subset: int = 0, target: float = TARGET) -> dict[str, Any]:
    """The Paper Study recipe, testing after each epoch, stopping once test accuracy >= target."""
    t0 = time.perf_counter()
    model, optimizer, train_loader, test_loader = setup(seed, train_subset, test_subset)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    acc, epochs = 0.0, 0
    while epochs < max_epochs:
        train_epoch(model, optimizer, train_loader)
        scheduler.step()
        epochs += 1
        acc = accuracy(model, test_loader)
        if acc >= target:
            break
    return {"seed": seed, "epochs": epochs, "test_accuracy": acc, "reached": acc >= target,
            "in_process_seconds": time.perf_counter() - t0}


def child() -> None:
    """Entry of the child process timed as the baseline's whole process (see whole_process)."""
    seed, max_epochs, train_subset, test_subset = (int(a) for a in sys.argv[1:5])
    print(json.dumps(time_to_target(seed, max_epochs, train_subset, test_subset)))


def whole_process(seed: int, max_epochs: int, train_subset: int, test_subset: int
                  ) -> dict[str, Any]:
    """One time-to-99 run of the baseline as a process of its own, timed from outside."""
    code = "from lenet.bench.baseline import child; child()"
    r, wall = run_json([sys.executable, "-c", code, str(seed), str(max_epochs),
                        str(train_subset), str(test_subset)])
    return {**r, "wall_seconds": wall}
