"""`lenet bench`: training and inference speed, side by side in one run, on this machine.

Every figure comes from the same process (or its children) so that ratios hold even on a busy
machine, where absolute numbers do not:

- training seconds per epoch and images/s of ``lenet5`` with the baseline, the tutorials'
  pipeline (:mod:`lenet.bench.baseline`: a Dataset that builds a PIL image per sample, as
  torchvision's MNIST does, ToTensor, Normalize(0.5, 0.5), a shuffling DataLoader, batch 64,
  Adam) and with `lenet train` (same model, same batch; :mod:`lenet.bench.training`);
- time to 99.0 % test accuracy over several seeds, each a whole process, data load included: the
  baseline with the Paper Study recipe (Adam lr 0.01, StepLR(3, 0.1), batch 64, testing after
  each epoch, stopping at 99.0 %) against ``lenet train --config lenet5-fast``;
- achieved training GFLOP/s (FLOPs of one training step counted by
  ``torch.utils.flop_counter.FlopCounterMode``) as a fraction of this machine's own fp32 peak,
  measured with a large matrix multiply in the same run (:mod:`lenet.bench.hardware`);
- inference latency at batch 1 and images/s at batch 1024 for torch eager, the best torch path
  found here, and ONNX Runtime (with CUDA-event timings and the GPU's name on a GPU;
  :mod:`lenet.bench.inference`).

Every timed figure is steady-state and measured the same way on both sides of a ratio: a
training-speed row runs three epochs and reports the fastest after the first (warm-up: oneDNN
builds its kernels for every new shape); the peak and the inference figures are the fastest of
five timed rounds after warm-up calls, as timeit does. The first epoch is reported too.
:mod:`lenet.bench.report` turns the result into a Markdown table.

Speed goals live here and in BENCHMARKS.md, never in timed unit tests.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet import data
from lenet.bench import baseline, hardware, inference, training
from lenet.bench.baseline import TARGET, TRAIN_BATCH
from lenet.bench.report import finite, markdown
from lenet.bench.training import LARGE_BATCH
from lenet.console import Log
from lenet.console import log as stderr_log
from lenet.runtime.device import pick
from lenet.training.sweep import mean_std

__all__ = ["Settings", "finite", "markdown", "run"]


@dataclass
class Settings:
    """How much to measure: the full bench, or a few seconds' worth for tests (``--quick``)."""

    seeds: int = 5  # random seeds of each side's time-to-99 runs
    max_epochs: int = 10  # cap of the baseline's time-to-99 runs
    train_subset: int = 0  # 0: all 60,000 digits
    test_subset: int = 0
    baseline_epoch_batches: int = 0  # 0: a whole epoch of the baseline for its speed row
    # Epochs of each training-speed row: the first is warm-up (oneDNN builds its kernels for
    # every new shape, the allocator grows its pools), the fastest of the others is reported.
    speed_epochs: int = 3
    peak_size: int = 2048
    infer_repeats: float = 1.0  # scales the number of timed inference calls
    fast_config: str = "lenet5-fast"
    patterns: int = 3000  # per-pattern steps timed for each lenet5-1998 step implementation

    @classmethod
    def quick(cls) -> Settings:
        return cls(seeds=2, max_epochs=1, train_subset=1024, test_subset=512,
                   baseline_epoch_batches=8, speed_epochs=2, peak_size=512, infer_repeats=0.05,
                   patterns=100)


def _speed_rows(s: Settings, run_root: Path, device: str, log: Log) -> dict[str, Any]:
    """Training speed, in process: the baseline, `lenet train` at batch 64 and at batch 512."""
    subsets = {"train_subset": s.train_subset, "test_subset": s.test_subset}
    log("training speed: the baseline (tutorials' pipeline), then `lenet train` "
        "(lenet5, batch 64) ...")
    base = baseline.epoch_speed(s.speed_epochs, max_batches=s.baseline_epoch_batches, **subsets)
    ours = training.lenet_train_epoch(run_root, device, s.speed_epochs, **subsets)
    log("training speed: `lenet train` (lenet5, batch 64) with autograd's step ...")
    autograd = training.lenet_train_autograd(run_root, device, s.speed_epochs, **subsets)
    log(f"training throughput: `lenet train` at batch {LARGE_BATCH}, --precision auto ...")
    large = training.lenet_train_large_batch(run_root, device, s.speed_epochs, **subsets)
    return {"baseline_pipeline": base, "lenet_train": ours, "lenet_train_autograd": autograd,
            "lenet_train_batch512_auto": large}


def _time_to_99(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's time-to-99 runs, summed up; the std of a single run is None."""
    walls = [r["wall_seconds"] for r in runs]
    mean, std = mean_std(walls)
    acc_mean, acc_std = mean_std([r["test_accuracy"] for r in runs])
    return {"wall_seconds_mean": mean, "wall_seconds_std": std, "wall_seconds_max": max(walls),
            "test_accuracy_mean": acc_mean, "test_accuracy_std": acc_std,
            "reached": sum(r["reached"] for r in runs), "runs": runs}


def _time_to_99_runs(s: Settings, run_root: Path, device: str, log: Log
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each side's time-to-99 runs, one whole process per seed."""
    log(f"time to {TARGET:.1%}: {s.seeds} seeds, each pipeline a whole process ...")
    base = [baseline.whole_process(k, s.max_epochs, s.train_subset, s.test_subset)
            for k in range(s.seeds)]
    fast = [training.whole_process(k, s.fast_config, run_root, device, s.train_subset,
                                   s.test_subset) for k in range(s.seeds)]
    return base, fast


def _training(s: Settings, device: str, log: Log, peak: float, flops: float) -> dict[str, Any]:
    """The training figures: speed rows, time to 99 % on both sides, and each row's share of
    the peak."""
    with tempfile.TemporaryDirectory(prefix="lenet-bench-") as tmp:
        run_root = Path(tmp)
        train = _speed_rows(s, run_root, device, log)
        base_runs, fast_runs = _time_to_99_runs(s, run_root, device, log)
    result: dict[str, Any] = {
        "train": train,
        "epoch_speedup": (train["baseline_pipeline"]["seconds_per_epoch"]
                          / train["lenet_train"]["seconds_per_epoch"]),
        "time_to_99_baseline_pipeline": _time_to_99(base_runs),
        "time_to_99_lenet5_fast": _time_to_99(fast_runs)}
    result["time_to_99_ratio"] = (result["time_to_99_baseline_pipeline"]["wall_seconds_mean"]
                                  / result["time_to_99_lenet5_fast"]["wall_seconds_mean"])
    train["lenet5_fast"] = {
        "seconds_per_epoch": statistics.fmean(r["seconds_per_epoch"] for r in fast_runs),
        "images_per_s": statistics.fmean(
            (s.train_subset or 60_000) / r["seconds_per_epoch"] for r in fast_runs)}
    for row in train.values():
        row["gflops"] = row["images_per_s"] * flops / 1e9
        row["fraction_of_peak"] = row["gflops"] / peak
    result["best_train_fraction_of_peak"] = max(row["fraction_of_peak"] for row in train.values())
    return result


def run(s: Settings, device_name: str = "auto", log: Log = stderr_log) -> dict[str, Any]:
    """Every figure of `lenet bench`, as one JSON-ready dict (:func:`markdown` renders it)."""
    device = pick(device_name)
    data.fetch("mnist")
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "command": "lenet bench" + (" --quick" if s.train_subset else ""),
                              "machine": hardware.machine(device), "settings": s.__dict__.copy()}
    log("peak: fp32 matrix multiply ...")
    peak = hardware.matmul_peak_gflops(device, s.peak_size)
    flops = hardware.train_step_flops("lenet5", TRAIN_BATCH)
    result.update(peak_gflops=peak, train_mflop_per_image=flops / 1e6)
    result.update(_training(s, device.type, log, peak, flops))
    if device.type == "cpu":
        log("the paper's per-pattern step (lenet5-1998, batch 1): autograd, hand-written, "
            "compiled ...")
        result["per_pattern"] = training.per_pattern(s.patterns)
        log("an epoch beside one busy core: lenet's default threads, then every core ...")
        with tempfile.TemporaryDirectory(prefix="lenet-bench-") as tmp:
            result["busy_core"] = training.busy_core(Path(tmp), device.type, s.train_subset,
                                                     s.test_subset)
    log("inference: torch paths and ONNX Runtime, batch 1 and 1024 ...")
    rows = inference.inference(device, s.infer_repeats)
    result["inference"] = rows
    result.update(inference.bests(rows))
    result["machine"]["load_average_after"] = hardware.load_average()
    return result
