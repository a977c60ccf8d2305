"""Training speed only: the baseline against `lenet train`, same model, same batch.

    python benchmarks/train_speed.py [--json]

The baseline is a Dataset that builds a PIL image per sample (as torchvision's MNIST does),
torchvision's ToTensor and Normalize((0.5,), (0.5,)) steps, a shuffling DataLoader, batch 64,
Adam (lenet.bench.baseline); `lenet train` runs the default `lenet5` recipe at the same batch.
Both are measured in this one process, one after the other, each for 3 epochs of which the first
is warm-up and the fastest other one counts, so the ratio holds on a busy machine even where
absolute seconds do not.
`lenet bench` measures this and everything else (time to 99 %, % of peak, inference).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from lenet import bench, data
from lenet.bench import baseline, training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args()
    data.fetch("mnist")
    s = bench.Settings()
    base = baseline.epoch_speed(s.speed_epochs)
    with tempfile.TemporaryDirectory(prefix="lenet-train-speed-") as tmp:
        ours = training.lenet_train_epoch(Path(tmp), "cpu", s.speed_epochs)
    result = {"baseline_pipeline": base, "lenet_train": ours,
              "speedup": base["seconds_per_epoch"] / ours["seconds_per_epoch"]}
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print("| pipeline (lenet5, batch 64) | s/epoch | images/s |")
    print("|---|---:|---:|")
    for name, row in (("baseline (tutorials' PIL DataLoader pipeline)", base),
                      ("lenet train", ours)):
        print(f"| {name} | {row['seconds_per_epoch']:.2f} | {row['images_per_s']:,.0f} |")
    print(f"\nlenet train is {result['speedup']:.2f}x faster per epoch")


if __name__ == "__main__":
    main()
