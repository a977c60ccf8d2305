"""Training speed, side by side in one run: the seeds' pipeline against `lenet train`.

The seeds' pipeline is what the tutorials we grew from do: a Dataset that builds a PIL image per
sample (exactly as torchvision's MNIST does), ToTensor, Normalize(0.5, 0.5), a DataLoader with
batch 64 and shuffling, the same LeNet-5 and Adam. We re-create torchvision's per-sample path
with PIL and numpy (torchvision itself does not install beside the CPU torch wheel here).

    python benchmarks/train_speed.py [--epochs 1] [--fast-seeds 3] [--out BENCHMARKS-train.json]

Prints a Markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lenet import data
from lenet.models import create


class PILMNIST(Dataset):
    """torchvision.datasets.MNIST's __getitem__: uint8 row -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.data, self.targets = images, labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.data[i].numpy(), mode="L")
        # transforms.ToTensor() then transforms.Normalize((0.5,), (0.5,)), as torchvision does.
        t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(28, 28, 1)
        t = t.permute(2, 0, 1).contiguous().float().div(255)
        t = t.sub_(0.5).div_(0.5)
        return t, int(self.targets[i])


def seeds_pipeline_epoch_seconds(epochs: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    images, labels = data.load("mnist", "train")
    loader = DataLoader(PILMNIST(images, labels), batch_size=64, shuffle=True)
    model = create("lenet5")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    criterion = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for inputs, targets in loader:
            loss = criterion(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - t0)
    return times


def lenet_train(args: list[str]) -> tuple[dict, float]:
    """Run `lenet train ... --json` as a user would; return its JSON and the process wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lenet", "train", *args, "--json",
                           "--no-tensorboard"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lenet train failed:\n{proc.stderr}")
    return json.loads(proc.stdout), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per pipeline")
    p.add_argument("--fast-seeds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/train_speed.json")
    a = p.parse_args()
    run_root = Path("runs") / "bench"
    data.fetch("mnist")

    seeds_times = seeds_pipeline_epoch_seconds(a.epochs)
    ours, _ = lenet_train(["--config", "lenet5", "--epochs", str(a.epochs),
                           "--run-dir", str(run_root / "lenet5")])
    seeds_epoch = sum(seeds_times) / len(seeds_times)
    ours_epoch = ours["seconds_per_epoch"]

    fast = []
    for seed in range(a.fast_seeds):
        r, wall = lenet_train(["--config", "lenet5-fast", "--seed", str(seed),
                               "--run-dir", str(run_root / f"fast-{seed}")])
        fast.append({"seed": seed, "test_accuracy": r["test_accuracy"], "wall_seconds": wall,
                     "train_seconds": r["train_seconds"], "epochs": r["epochs"]})
    accs = np.array([f["test_accuracy"] for f in fast])
    walls = np.array([f["wall_seconds"] for f in fast])

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                   f"threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "seeds_pipeline_seconds_per_epoch": seeds_epoch,
        "lenet_train_seconds_per_epoch": ours_epoch,
        "epoch_speedup": seeds_epoch / ours_epoch,
        "fast_runs": fast,
        "fast_accuracy_mean": float(accs.mean()),
        "fast_accuracy_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        "fast_wall_seconds_mean": float(walls.mean()),
        "fast_wall_seconds_max": float(walls.max()),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| what | value |\n|---|---|\n"
          f"| seeds' pipeline, lenet5 batch 64 | {seeds_epoch:.2f} s/epoch |\n"
          f"| `lenet train --config lenet5` (batch 64) | {ours_epoch:.2f} s/epoch |\n"
          f"| speed-up | {result['epoch_speedup']:.2f}x |\n"
          f"| `lenet5-fast`, {len(fast)} seeds | test accuracy {accs.mean():.4f} ± "
          f"{result['fast_accuracy_std']:.4f}, whole process {walls.mean():.2f} s "
          f"(max {walls.max():.2f} s) |")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
