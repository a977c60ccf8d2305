"""`lenet train`'s side of the training figures: steady epoch speed in process, time to 99 % as a
whole process, and the paper's per-pattern SDLM step."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch

from lenet import data
from lenet.bench.baseline import TARGET, TRAIN_BATCH
from lenet.bench.hardware import run_json
from lenet.config import resolve
from lenet.models import create, get_spec
from lenet.models.lenet1998 import LeNet1998
from lenet.models.losses import make_loss
from lenet.runtime import jobs
from lenet.runtime.threads import available_cores, threads
from lenet.training import train
from lenet.training.optim import SDLM
from lenet.training.steps import PATTERN_CHUNK
from lenet.training.steps.pattern import PatternStep

LARGE_BATCH = 512  # the training-throughput row: enough work per call for the small convolutions


def train_speed(recipe: str, overrides: dict[str, Any], run_dir: Path, device: str,
                epochs: int, train_subset: int = 0, test_subset: int = 0) -> dict[str, float]:
    """One in-process `lenet train` run of `epochs` epochs: its steady epoch speed.

    The first epoch is warm-up; the fastest later epoch gives seconds and images/s. Each is
    training time only, like the baseline's side (baseline.train_epoch), without the test pass.
    """
    cfg = resolve(recipe, {**overrides, "epochs": epochs, "tensorboard": False,
                           "device": device, "train_subset": train_subset,
                           "test_subset": test_subset, "run_dir": str(run_dir)})
    lines: list[str] = []
    r = train(cfg, log=lines.append, progress=False)
    ips = max(m.images_per_s for m in r.history[1:] or r.history)
    n = train_subset or 60_000
    return {"seconds_per_epoch": n / ips, "images_per_s": ips,
            "first_epoch_seconds": n / r.history[0].images_per_s, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "test_accuracy": r.test.accuracy,
            "compiled_step": any("step compiled with" in line for line in lines)}


def lenet_train_epoch(run_root: Path, device: str, epochs: int, train_subset: int = 0,
                      test_subset: int = 0) -> dict[str, float]:
    """`lenet train` with the Paper Study recipe (lenet5, batch 64), in process."""
    return train_speed("lenet5", {"batch_size": TRAIN_BATCH}, run_root / "lenet5", device,
                       epochs, train_subset, test_subset)


def lenet_train_autograd(run_root: Path, device: str, epochs: int, train_subset: int = 0,
                         test_subset: int = 0) -> dict[str, float]:
    """:func:`lenet_train_epoch` with autograd's step (``--set step=torch``) instead of the
    compiled one: what the compiled step gains, in the same run."""
    return train_speed("lenet5", {"batch_size": TRAIN_BATCH, "step": "torch"},
                       run_root / "lenet5-autograd", device, epochs, train_subset, test_subset)


def lenet_train_large_batch(run_root: Path, device: str, epochs: int, train_subset: int = 0,
                            test_subset: int = 0) -> dict[str, float]:
    """Throughput at the batch where the CPU is best used: `lenet train --config lenet5-fast
    --batch-size 512 --lr 0.2 --precision auto` (channels-last; bf16 only where the CPU has it
    natively, since emulated bf16 is several times slower than fp32)."""
    return train_speed("lenet5-fast", {"batch_size": LARGE_BATCH, "lr": 0.2,
                                       "precision": "auto"},
                       run_root / "lenet5-large-batch", device, epochs, train_subset, test_subset)


def whole_process(seed: int, config: str, run_root: Path, device: str, train_subset: int = 0,
                  test_subset: int = 0) -> dict[str, Any]:
    """One time-to-99 run: `lenet train --config CONFIG --json` as a process of its own."""
    cmd = [sys.executable, "-m", "lenet", "train", "--config", config, "--seed", str(seed),
           "--json", "--no-tensorboard", "--device", device,
           "--run-dir", str(run_root / f"fast-{seed}")]
    if train_subset:
        cmd += ["--train-subset", str(train_subset)]
    if test_subset:
        cmd += ["--test-subset", str(test_subset)]
    r, wall = run_json(cmd)
    return {"seed": seed, "epochs": r["epochs"], "test_accuracy": r["test_accuracy"],
            "reached": r["test_accuracy"] >= TARGET, "train_seconds": r["train_seconds"],
            "seconds_per_epoch": r["seconds_per_epoch"], "wall_seconds": wall}


def per_pattern(patterns: int) -> dict[str, float]:
    """The paper's recipe: µs per lenet5-1998 SDLM step at batch 1, autograd against the
    hand-written step (:mod:`lenet.training.steps.pattern`), as the trainer runs them (one thread,
    ATen's native convolutions), on real digits; plus the implied 60,000-pattern pass."""
    images, labels = data.load("mnist", "train")
    x = get_spec("lenet5-1998").preprocessing(images[:patterns])
    y = labels[:patterns]
    out: dict[str, float] = {}
    with threads(1), _native_convolutions():
        for name in ("autograd", "hand_written", "compiled"):
            torch.manual_seed(0)
            model = create("lenet5-1998")
            opt = SDLM(model.parameters(), lr=2e-5)
            opt.before_epoch(model, (x[:500], y[:500]), "rbf-map")
            step = _pattern_step(name, model, opt)
            if step is None:  # numba is an extra (lenet[fast])
                continue
            for i in range(min(50, patterns)):  # warm-up
                step(x[i:i + 1], y[i:i + 1])
            t0 = time.perf_counter()
            for i in range(patterns):
                step(x[i:i + 1], y[i:i + 1])
            out[f"{name}_us"] = (time.perf_counter() - t0) / patterns * 1e6
            if name == "compiled":  # as the trainer calls it: PATTERN_CHUNK patterns a call
                out["compiled_chunked_us"] = _chunked_us(step, x, y)
        t0 = time.perf_counter()
        opt.before_epoch(model, (x[:500], y[:500]), "rbf-map")
        out["curvature_seconds"] = time.perf_counter() - t0
    out["speedup"] = out["autograd_us"] / out["hand_written_us"]
    fastest = out.get("compiled_chunked_us", out["hand_written_us"])
    # A pass as the trainer runs it, less its test evaluation: the steps and the curvature
    # estimate that SDLM makes before every pass.
    out["pass_seconds"] = 60_000 * fastest / 1e6 + out["curvature_seconds"]
    return out


@contextlib.contextmanager
def _native_convolutions() -> Iterator[None]:
    """ATen's own convolutions (oneDNN off), as the trainer's per-pattern steps run."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # torch's flag setter
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _pattern_step(name: str, model: Any, opt: SDLM) -> Any:
    """One SDLM step at batch 1 of the kind `name` (None: the compiled one without numba)."""
    if name == "compiled":
        return _compiled_step(model, opt)
    if name == "hand_written":
        return PatternStep(cast(LeNet1998, model), opt, "rbf-map")
    loss_fn = make_loss("rbf-map")

    def autograd(xb: torch.Tensor, yb: torch.Tensor) -> None:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return autograd


def _chunked_us(step: Any, x: Any, y: Any) -> float:
    """µs per pattern of NumbaPatternStep.sequence over the trainer's chunks, after one chunk
    of warm-up: ``sequence`` is a kernel of its own, and its first call compiles it (or loads
    numba's cache), several seconds that the single-call warm-up did not cover."""
    step.sequence(x[:PATTERN_CHUNK], y[:PATTERN_CHUNK])
    t0 = time.perf_counter()
    for i in range(0, len(x), PATTERN_CHUNK):
        step.sequence(x[i:i + PATTERN_CHUNK], y[i:i + PATTERN_CHUNK])
    return (time.perf_counter() - t0) / len(x) * 1e6


def _compiled_step(model: Any, opt: Any) -> Any:
    """The numba step the trainer would use, or None without numba; its first call (compiling,
    or loading numba's cache) happens in the warm-up, outside the timing."""
    try:
        from lenet.training.steps.pattern_numba import (  # noqa: PLC0415  (extra: numba)
            NumbaPatternStep,
            supports,
        )
    except ImportError:
        return None
    return NumbaPatternStep(model, opt, "rbf-map") if supports(model, opt, "rbf-map") else None


def busy_core(run_root: Path, device: str, train_subset: int = 0, test_subset: int = 0
              ) -> dict[str, Any]:
    """An epoch of `lenet train --config lenet5` as a whole process: quiet, then beside one busy
    core (a Python spin loop), with lenet's default threads (the cores free at start) and with
    OMP_NUM_THREADS set to every core (torch's own default)."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    every = {**base, "OMP_NUM_THREADS": str(available_cores())}
    row = {"quiet_default": _epoch(run_root, device, base, train_subset, test_subset)}
    with jobs.background([sys.executable, "-c", "while True: pass"]):
        time.sleep(1.0)
        row["busy_default"] = _epoch(run_root, device, base, train_subset, test_subset)
        row["busy_every_core"] = _epoch(run_root, device, every, train_subset, test_subset)
    quiet = row["quiet_default"]["seconds_per_epoch"]
    for key in ("busy_default", "busy_every_core"):
        row[key]["vs_quiet"] = row[key]["seconds_per_epoch"] / quiet
    return row


def _epoch(run_root: Path, device: str, env: dict[str, str], train_subset: int,
           test_subset: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lenet", "train", "--config", "lenet5", "--epochs", "2",
           "--no-tensorboard", "--json", "--device", device, "--run-dir",
           str(run_root / "busy-core"), "--overwrite"]
    if train_subset:
        cmd += ["--train-subset", str(train_subset)]
    if test_subset:
        cmd += ["--test-subset", str(test_subset)]
    r, _ = run_json(cmd, env=env)
    cfg = json.loads((run_root / "busy-core" / "config.json").read_text())
    return {"seconds_per_epoch": r["seconds_per_epoch"], "threads": cfg["threads"]}
