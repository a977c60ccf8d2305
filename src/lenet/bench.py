"""`lenet bench`: training and inference speed, side by side in one run, on this machine.

Every figure comes from the same process (or its children) so that ratios hold even on a busy
machine, where absolute numbers do not:

- training seconds per epoch and images/s of ``lenet5`` with the seeds' pipeline (a Dataset that
  builds a PIL image per sample, as torchvision's MNIST does, ToTensor, Normalize(0.5, 0.5), a
  shuffling DataLoader, batch 64, Adam) and with `lenet train` (same model, same batch);
- time to 99.0 % test accuracy over several seeds, each a whole process, data load included: the
  seeds' pipeline with the Paper Study recipe (Adam lr 0.01, StepLR(3, 0.1), batch 64, testing
  after each epoch, stopping at 99.0 %) against ``lenet train --config lenet5-fast``;
- achieved training GFLOP/s (FLOPs of one training step counted by
  ``torch.utils.flop_counter.FlopCounterMode``) as a fraction of this machine's own fp32 peak,
  measured with a large matrix multiply in the same run;
- inference latency at batch 1 and images/s at batch 1024 for torch eager, the best torch path
  found here, and ONNX Runtime (with CUDA-event timings and the GPU's name on a GPU).

Every timed figure is steady-state and measured the same way on both sides of a ratio: a
training-speed row runs three epochs and reports the fastest after the first (warm-up: oneDNN
builds its kernels for every new shape); the peak and the inference figures are the fastest of
five timed rounds after warm-up calls, as timeit does. The first epoch is reported too.

Speed goals live here and in BENCHMARKS.md, never in timed unit tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET = 0.99
TRAIN_BATCH = 64
LARGE_BATCH = 512  # the training-throughput row: enough work per call for the small convolutions
ROUNDS = 5  # timed rounds per figure; the fastest is reported, as timeit does


@dataclass
class Settings:
    """How much to measure: the full bench, or a few seconds' worth for tests (``--quick``)."""

    seeds: int = 5
    max_epochs: int = 10  # cap of the seeds' pipeline's time-to-99 runs
    train_subset: int = 0  # 0: all 60,000 digits
    test_subset: int = 0
    seeds_epoch_batches: int = 0  # 0: a whole epoch of the seeds' pipeline for its speed row
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
                   seeds_epoch_batches=8, speed_epochs=2, peak_size=512, infer_repeats=0.05,
                   patterns=100)


# --------------------------------------------------------------------------- the seeds' pipeline
def _pil_dataset(images: Any, labels: Any) -> Any:
    """torchvision's MNIST with ``Compose([ToTensor(), Normalize((0.5,), (0.5,))])``, as the
    seeds' code builds it, re-created without torchvision (which this project cannot import).

    Per sample, as torchvision does it: the uint8 row becomes a PIL image; ToTensor copies it
    into a tensor, views it as (H, W, bands), permutes to (C, H, W), makes it contiguous and
    divides by 255; Normalize, an nn.Module, clones the tensor (it works out of place by
    default), turns mean and std into tensors, checks std for zeros, and subtracts and divides
    in place. Only torchvision's argument type checks and API-usage logging are left out.
    """
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn
    from torch.utils.data import Dataset

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

    transforms = [ToTensor(), Normalize((0.5,), (0.5,))]

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


def _seeds_model() -> Any:
    """The seeds' LeNet-5, as the "Paper Study" code writes it: conv, ReLU, then max-pool,
    in an nn.Module of its own. Not `lenet.models.create("lenet5")`, whose training-time
    forward is tuned, so that a speed-up of lenet5 can never flatter the seeds' side too."""
    from torch import nn
    from torch.nn import functional as F

    class SeedsLeNet5(nn.Module):
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

    return SeedsLeNet5()


def _seeds_setup(seed: int, train_subset: int, test_subset: int, batch_size: int = TRAIN_BATCH):
    import torch
    from torch.utils.data import DataLoader

    from lenet import data

    torch.manual_seed(seed)
    tx, ty = data.load("mnist", "train")
    vx, vy = data.load("mnist", "test")
    if train_subset:
        tx, ty = tx[:train_subset], ty[:train_subset]
    if test_subset:
        vx, vy = vx[:test_subset], vy[:test_subset]
    train_loader = DataLoader(_pil_dataset(tx, ty), batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(_pil_dataset(vx, vy), batch_size=1000)
    model = _seeds_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return model, optimizer, train_loader, test_loader


def _seeds_train_epoch(model, optimizer, loader, max_batches: int = 0) -> tuple[float, int]:
    """One epoch (or its first `max_batches`) of the seeds' loop: seconds and images seen."""
    import torch

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


def _seeds_test(model, loader) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += int((model(inputs).argmax(1) == targets).sum())
            total += len(targets)
    return correct / total


def seeds_time_to_target(seed: int, max_epochs: int, train_subset: int = 0,
                         test_subset: int = 0, target: float = TARGET) -> dict[str, Any]:
    """The Paper Study recipe, testing after each epoch, stopping once test accuracy >= target."""
    import torch

    t0 = time.perf_counter()
    model, optimizer, train_loader, test_loader = _seeds_setup(seed, train_subset, test_subset)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    acc, epochs = 0.0, 0
    while epochs < max_epochs:
        _seeds_train_epoch(model, optimizer, train_loader)
        scheduler.step()
        epochs += 1
        acc = _seeds_test(model, test_loader)
        if acc >= target:
            break
    return {"seed": seed, "epochs": epochs, "test_accuracy": acc, "reached": acc >= target,
            "in_process_seconds": time.perf_counter() - t0}


def _seeds_child() -> None:
    """Entry of the child process timed as the seeds' whole process (see _seeds_process)."""
    seed, max_epochs, train_subset, test_subset = (int(a) for a in sys.argv[1:5])
    print(json.dumps(seeds_time_to_target(seed, max_epochs, train_subset, test_subset)))


def _run_json(cmd: list[str]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        from lenet.errors import LenetError

        raise LenetError(f"benchmark child failed ({' '.join(cmd[:4])} ...):\n{proc.stderr}")
    out = proc.stdout
    return json.loads(out[out.index("{"):]), wall  # the JSON object ends the output


def _seeds_process(seed: int, s: Settings) -> dict[str, Any]:
    code = "from lenet.bench import _seeds_child; _seeds_child()"
    r, wall = _run_json([sys.executable, "-c", code, str(seed), str(s.max_epochs),
                         str(s.train_subset), str(s.test_subset)])
    return {**r, "wall_seconds": wall}


def _lenet_train_process(seed: int, s: Settings, run_root: Path, device: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lenet", "train", "--config", s.fast_config, "--seed", str(seed),
           "--json", "--no-tensorboard", "--device", device,
           "--run-dir", str(run_root / f"fast-{seed}")]
    if s.train_subset:
        cmd += ["--train-subset", str(s.train_subset)]
    if s.test_subset:
        cmd += ["--test-subset", str(s.test_subset)]
    r, wall = _run_json(cmd)
    return {"seed": seed, "epochs": r["epochs"], "test_accuracy": r["test_accuracy"],
            "reached": r["test_accuracy"] >= TARGET, "train_seconds": r["train_seconds"],
            "seconds_per_epoch": r["seconds_per_epoch"], "wall_seconds": wall}


# --------------------------------------------------------------------------- hardware peak
def _timer(device: Any) -> Callable[[Callable[[], Any], int], float]:
    """Seconds per call of fn: perf_counter on a CPU, CUDA events on a GPU."""
    import torch

    if device.type == "cuda":
        def cuda_time(fn: Callable[[], Any], n: int) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / n
        return cuda_time

    def cpu_time(fn: Callable[[], Any], n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    return cpu_time


def _best_of(fn: Callable[[], Any], calls: int, rounds: int, device: Any, warmup: int = 3
             ) -> float:
    """The fastest round's seconds per call (the least disturbed by other processes)."""
    for _ in range(warmup):
        fn()
    timer = _timer(device)
    return min(timer(fn, calls) for _ in range(rounds))


def matmul_peak_gflops(device: Any, size: int = 2048) -> float:
    """fp32 GFLOP/s of a large square matrix multiply: this machine's practical peak."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    calls = 5 if device.type == "cpu" else 50
    sec = _best_of(lambda: torch.mm(a, b, out=out), calls, ROUNDS, device)
    return 2 * size**3 / sec / 1e9


def train_step_flops(model_name: str = "lenet5", batch: int = TRAIN_BATCH) -> float:
    """FLOPs of one training step (forward, loss, backward) per image, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lenet.models import create, get_spec

    spec = get_spec(model_name)
    model = create(model_name)
    side = spec.preprocessing.input_size
    x, y = torch.randn(batch, 1, side, side), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


# --------------------------------------------------------------------------- inference
def _inference_model(device: Any):
    import torch

    from lenet import weights
    from lenet.models import create, get_spec

    torch.manual_seed(0)
    spec = get_spec("lenet5")
    model = create("lenet5").to(device).eval()
    meta = weights.WeightsMeta("lenet5", spec.preprocessing, "mnist",
                               [str(i) for i in range(10)], None, {})
    return model, meta


def _torch_paths(model: Any, device: Any) -> dict[str, Callable[[Any], Callable[[], Any]]]:
    """Candidate torch inference paths: name -> (input -> zero-argument call)."""
    import copy

    import torch

    def eager(x):
        def call():
            with torch.inference_mode():
                return model(x)
        return call

    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def channels_last(x):
        xc = x.contiguous(memory_format=torch.channels_last)

        def call():
            with torch.inference_mode():
                return cl_model(xc)
        return call

    def jit_frozen(x):
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated, still measured here
            traced = torch.jit.freeze(torch.jit.trace(model, x[:2]).eval())

        def call():
            with torch.inference_mode():
                return traced(x)
        return call

    def native_conv(x):
        # ATen's own convolution kernels: less per-call overhead than oneDNN for tiny batches.
        def call():
            enabled = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
            try:
                with torch.inference_mode():
                    return model(x)
            finally:
                torch.backends.mkldnn.enabled = enabled
        return call

    def bf16(x):
        # bf16 autocast: fp32 weights and input, bf16 matmuls (changes the last digits of
        # the scores, so it is a row of its own, never a silent default).
        xc = x.contiguous(memory_format=torch.channels_last)

        def call():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                return cl_model(xc)
        return call

    paths = {"eager": eager, "channels_last": channels_last, "jit_frozen": jit_frozen}
    if device.type == "cpu":
        paths["native_conv"] = native_conv
    if device.type == "cuda" or _cpu_has_bf16():
        paths["channels_last_bf16"] = bf16
    return paths


def _cpu_has_bf16() -> bool:
    """Native bf16 dot products (AVX512-BF16 or AMX); elsewhere bf16 is emulated, and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _measure_inference(make: Callable[[Any], Callable[[], Any]], device: Any, repeats: float,
                       side: int = 32) -> dict[str, float]:
    import torch

    x1 = torch.randn(1, 1, side, side, device=device)
    xb = torch.randn(1024, 1, side, side, device=device)
    n1 = max(20, int(2000 * repeats))
    nb = max(3, int(40 * repeats))
    lat = _best_of(make(x1), n1, ROUNDS, device, warmup=20)
    thr = _best_of(make(xb), nb, ROUNDS, device)
    return {"latency_us_batch1": lat * 1e6, "images_per_s_batch1024": 1024 / thr}


def _ort_inference(model: Any, meta: Any, repeats: float) -> dict[str, dict[str, float]]:
    """ONNX Runtime through `lenet.export`: ORT's defaults, lenet's session, IO-bound calls,
    and a one-thread session (the latency setting: no thread hand-off per operator)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from lenet.export import INPUT_NAME, OUTPUT_NAME, make_session, to_onnx

    proto = to_onnx(model, meta).SerializeToString()
    session = make_session(proto)
    latency_session = make_session(proto, threads=1)
    plain = ort.SessionOptions()  # ORT's own defaults, to show what make_session's options buy
    plain.log_severity_level = 3
    default_session = ort.InferenceSession(proto, plain, providers=["CPUExecutionProvider"])
    side = meta.preprocessing.input_size
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    n1, nb = max(20, int(3000 * repeats)), max(3, int(40 * repeats))
    cpu = torch.device("cpu")
    for name, sess, bound in (("onnxruntime_defaults", default_session, False),
                              ("onnxruntime", session, False),
                              ("onnxruntime_iobinding", session, True),
                              ("onnxruntime_1thread_iobinding", latency_session, True)):
        res = {}
        for batch, n in ((1, n1), (1024, nb)):
            x = rng.standard_normal((batch, 1, side, side), dtype=np.float32)
            if bound:
                binding = sess.io_binding()
                binding.bind_cpu_input(INPUT_NAME, x)
                binding.bind_output(OUTPUT_NAME)

                def call(binding=binding, sess=sess):
                    return sess.run_with_iobinding(binding)
            else:
                def call(x=x, sess=sess):
                    return sess.run(None, {INPUT_NAME: x})
            sec = _best_of(call, n, ROUNDS, cpu, warmup=20)
            res["latency_us_batch1" if batch == 1 else "images_per_s_batch1024"] = (
                sec * 1e6 if batch == 1 else batch / sec)
        out[name] = res
    return out


def inference(device: Any, repeats: float) -> dict[str, dict[str, float]]:
    model, meta = _inference_model(device)
    side = meta.preprocessing.input_size
    rows = {name: _measure_inference(make, device, repeats, side)
            for name, make in _torch_paths(model, device).items()}
    try:
        if device.type == "cpu":
            rows.update(_ort_inference(model.cpu(), meta, repeats))
    except ImportError:  # onnx/onnxruntime are an extra; the torch rows still stand
        pass
    return rows


# --------------------------------------------------------------------------- training speed
def _train_speed(recipe: str, overrides: dict[str, Any], s: Settings, run_dir: Path,
                 device: str) -> dict[str, float]:
    """One in-process `lenet train` run of `s.speed_epochs` epochs: its steady epoch speed.

    The first epoch is warm-up; the fastest later epoch gives seconds and images/s. Each is
    training time only, like the seeds' side (_seeds_train_epoch), without the test pass.
    """
    from lenet.config import resolve
    from lenet.train import train

    cfg = resolve(recipe, {**overrides, "epochs": s.speed_epochs, "tensorboard": False,
                           "device": device, "train_subset": s.train_subset,
                           "test_subset": s.test_subset, "run_dir": str(run_dir)})
    r = train(cfg, log=lambda _: None, progress=False)
    ips = max(m.images_per_s for m in r.history[1:] or r.history)
    n = s.train_subset or 60_000
    return {"seconds_per_epoch": n / ips, "images_per_s": ips,
            "first_epoch_seconds": n / r.history[0].images_per_s, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "test_accuracy": r.test.accuracy}


def lenet_train_epoch(s: Settings, run_root: Path, device: str) -> dict[str, float]:
    """`lenet train` with the Paper Study recipe (lenet5, batch 64), in process."""
    return _train_speed("lenet5", {"batch_size": TRAIN_BATCH}, s, run_root / "lenet5", device)


def lenet_train_large_batch(s: Settings, run_root: Path, device: str) -> dict[str, float]:
    """Throughput at the batch where the CPU is best used: `lenet train --config lenet5-fast
    --batch-size 512 --lr 0.2 --bf16` (channels-last)."""
    return _train_speed("lenet5-fast", {"batch_size": LARGE_BATCH, "lr": 0.2, "bf16": True},
                        s, run_root / "lenet5-large-batch", device)


def per_pattern(patterns: int) -> dict[str, float]:
    """The paper's recipe: µs per lenet5-1998 SDLM step at batch 1, autograd against the
    hand-written step (:mod:`lenet.optim.pattern_step`), as the trainer runs them (one thread,
    ATen's native convolutions), on real digits; plus the implied 60,000-pattern pass."""
    import torch

    from lenet import data
    from lenet.losses import make_loss
    from lenet.models import create, get_spec
    from lenet.optim import SDLM
    from lenet.optim.pattern_step import PatternStep

    images, labels = data.load("mnist", "train")
    x = get_spec("lenet5-1998").preprocessing(images[:patterns])
    y = labels[:patterns]
    loss_fn = make_loss("rbf-map")
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    out: dict[str, float] = {}
    try:
        for name in ("autograd", "hand_written"):
            torch.manual_seed(0)
            model = create("lenet5-1998")
            opt = SDLM(model.parameters(), lr=2e-5)
            opt.before_epoch(model, (x[:500], y[:500]), "rbf-map")
            if name == "hand_written":
                step = PatternStep(model, opt, "rbf-map")
            else:
                def step(xb, yb, model=model, opt=opt):
                    loss = loss_fn(model(xb), yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            for i in range(min(50, patterns)):  # warm-up
                step(x[i:i + 1], y[i:i + 1])
            t0 = time.perf_counter()
            for i in range(patterns):
                step(x[i:i + 1], y[i:i + 1])
            out[f"{name}_us"] = (time.perf_counter() - t0) / patterns * 1e6
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
    out["speedup"] = out["autograd_us"] / out["hand_written_us"]
    out["pass_seconds"] = 60_000 * out["hand_written_us"] / 1e6
    return out


def seeds_epoch(s: Settings) -> dict[str, float]:
    """The seeds' pipeline for `s.speed_epochs` epochs: the first is warm-up, as on lenet's
    side, and the fastest later epoch is reported."""
    model, optimizer, loader, _ = _seeds_setup(0, s.train_subset, s.test_subset)
    epochs = [_seeds_train_epoch(model, optimizer, loader, s.seeds_epoch_batches)
              for _ in range(max(1, s.speed_epochs))]
    ips = [seen / sec for sec, seen in epochs]
    n = len(loader.dataset)
    best = max(ips[1:] or ips)
    return {"seconds_per_epoch": n / best, "images_per_s": best,
            "first_epoch_seconds": n / ips[0], "epochs": len(epochs)}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# --------------------------------------------------------------------------- the whole bench
def machine(device: Any) -> dict[str, Any]:
    import torch

    info = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "load_average": _load_average()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run(s: Settings, device_name: str = "auto", log: Callable[[str], None] = print
        ) -> dict[str, Any]:
    from lenet import data
    from lenet.device import pick

    device = pick(device_name)
    data.fetch("mnist")
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "command": "lenet bench" + (" --quick" if s.train_subset else ""),
                              "machine": machine(device), "settings": s.__dict__.copy()}
    with tempfile.TemporaryDirectory(prefix="lenet-bench-") as tmp:
        run_root = Path(tmp)
        log("peak: fp32 matrix multiply ...")
        peak = matmul_peak_gflops(device, s.peak_size)
        flops = train_step_flops()
        result.update(peak_gflops=peak, train_mflop_per_image=flops / 1e6)

        log("training speed: the seeds' pipeline, then `lenet train` (lenet5, batch 64) ...")
        seeds = seeds_epoch(s)
        ours = lenet_train_epoch(s, run_root, device.type)
        log(f"training throughput: `lenet train` at batch {LARGE_BATCH}, bf16 ...")
        large = lenet_train_large_batch(s, run_root, device.type)
        result["train"] = {"seeds_pipeline": seeds, "lenet_train": ours,
                           "lenet_train_batch512_bf16": large}
        result["epoch_speedup"] = seeds["seconds_per_epoch"] / ours["seconds_per_epoch"]

        log(f"time to {TARGET:.1%}: {s.seeds} seeds, each pipeline a whole process ...")
        seed_runs = [_seeds_process(k, s) for k in range(s.seeds)]
        fast_runs = [_lenet_train_process(k, s, run_root, device.type) for k in range(s.seeds)]
    for name, runs in (("seeds_pipeline", seed_runs), ("lenet5_fast", fast_runs)):
        walls = [r["wall_seconds"] for r in runs]
        accs = [r["test_accuracy"] for r in runs]
        mean, std = _mean_std(walls)
        acc_mean, acc_std = _mean_std(accs)
        result[f"time_to_99_{name}"] = {
            "wall_seconds_mean": mean, "wall_seconds_std": std, "wall_seconds_max": max(walls),
            "test_accuracy_mean": acc_mean, "test_accuracy_std": acc_std,
            "reached": sum(r["reached"] for r in runs), "runs": runs}
    result["time_to_99_ratio"] = (result["time_to_99_seeds_pipeline"]["wall_seconds_mean"]
                                  / result["time_to_99_lenet5_fast"]["wall_seconds_mean"])
    fast_ips = statistics.fmean(
        (s.train_subset or 60_000) / r["seconds_per_epoch"] for r in fast_runs)
    result["train"]["lenet5_fast"] = {
        "seconds_per_epoch": statistics.fmean(r["seconds_per_epoch"] for r in fast_runs),
        "images_per_s": fast_ips}
    for row in result["train"].values():
        row["gflops"] = row["images_per_s"] * flops / 1e9
        row["fraction_of_peak"] = row["gflops"] / peak
    result["best_train_fraction_of_peak"] = max(
        row["fraction_of_peak"] for row in result["train"].values())

    if device.type == "cpu":
        log("the paper's per-pattern step (lenet5-1998, batch 1): autograd, hand-written ...")
        result["per_pattern"] = per_pattern(s.patterns)

    log("inference: torch paths and ONNX Runtime, batch 1 and 1024 ...")
    rows = inference(device, s.infer_repeats)
    result["inference"] = rows
    best_lat = min(rows, key=lambda k: rows[k]["latency_us_batch1"])
    best_thr = max(rows, key=lambda k: rows[k]["images_per_s_batch1024"])
    result["best_latency_us_batch1"] = rows[best_lat]["latency_us_batch1"]
    result["best_latency_backend"] = best_lat
    result["best_images_per_s_batch1024"] = rows[best_thr]["images_per_s_batch1024"]
    result["best_throughput_backend"] = best_thr
    torch_rows = {k: v for k, v in rows.items() if not k.startswith("onnxruntime")}
    result["best_torch_path"] = max(torch_rows,
                                    key=lambda k: torch_rows[k]["images_per_s_batch1024"])
    result["machine"]["load_average_after"] = _load_average()
    return result


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    where = m.get("gpu") or m["cpu"]
    lines = [f"`{r['command']}` on {where} ({m['threads']} threads, torch {m['torch']}), "
             f"{r['date']}; load average before/after {m['load_average']} / "
             f"{m.get('load_average_after')}", "",
             "| what | value |", "|---|---|",
             f"| fp32 matmul peak ({r['settings']['peak_size']}²) | "
             f"{r['peak_gflops']:.1f} GFLOP/s |",
             f"| training FLOPs (lenet5, forward+backward) | {r['train_mflop_per_image']:.2f} "
             "MFLOP/image |"]
    names = {"seeds_pipeline": "seeds' pipeline (PIL DataLoader, batch 64)",
             "lenet_train": "`lenet train` (lenet5 recipe, batch 64)",
             "lenet_train_batch512_bf16": f"`lenet train` (lenet5-fast, batch {LARGE_BATCH}, "
                                          "lr 0.2, bf16)",
             "lenet5_fast": "`lenet train --config lenet5-fast`"}
    for key, row in r["train"].items():
        acc, first = row.get("test_accuracy"), row.get("first_epoch_seconds")
        lines.append(f"| training, {names[key]} | {row['seconds_per_epoch']:.2f} s/epoch "
                     f"(training only), {row['images_per_s']:,.0f} img/s, "
                     f"{row['gflops']:.1f} GFLOP/s ({row['fraction_of_peak']:.1%} of peak)"
                     + (f"; first (warm-up) epoch {first:.2f} s, fastest of the next "
                        f"{row['epochs'] - 1}" if first is not None and row["epochs"] > 1 else "")
                     + (f"; test accuracy {acc:.4f} after {row['epochs']} epochs"
                        if acc is not None else "")
                     + " |")
    lines.append(f"| epoch speed-up, `lenet train` vs seeds' pipeline | "
                 f"{r['epoch_speedup']:.1f}x |")
    for key, label in (("seeds_pipeline", "seeds' pipeline, Paper Study recipe"),
                       ("lenet5_fast", "`lenet train --config lenet5-fast`")):
        t = r[f"time_to_99_{key}"]
        n = len(t["runs"])
        lines.append(f"| time to {TARGET:.1%}, {label}, whole process, {n} seeds | "
                     f"{t['wall_seconds_mean']:.2f} ± {t['wall_seconds_std']:.2f} s (max "
                     f"{t['wall_seconds_max']:.2f} s); test accuracy {t['test_accuracy_mean']:.4f}"
                     f" ± {t['test_accuracy_std']:.4f}; reached {t['reached']}/{n} |")
    lines.append(f"| time-to-99 ratio (seeds' ÷ ours) | {r['time_to_99_ratio']:.1f}x |")
    if r.get("per_pattern"):
        p = r["per_pattern"]
        lines.append(f"| lenet5-1998 SDLM step at batch 1 (the paper's recipe), one thread | "
                     f"autograd {p['autograd_us']:.0f} µs, hand-written {p['hand_written_us']:.0f}"
                     f" µs ({p['speedup']:.2f}x); a 60,000-pattern pass in "
                     f"{p['pass_seconds']:.0f} s |")
    for name, row in r["inference"].items():
        lines.append(f"| inference, {name} | batch 1: {row['latency_us_batch1']:.1f} µs; "
                     f"batch 1024: {row['images_per_s_batch1024']:,.0f} img/s |")
    lines.append(f"| best inference | {r['best_latency_us_batch1']:.1f} µs "
                 f"({r['best_latency_backend']}), {r['best_images_per_s_batch1024']:,.0f} img/s "
                 f"({r['best_throughput_backend']}) |")
    return "\n".join(lines) + "\n"


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: such figures become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- CLI
def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `lenet bench`."""
    p = sub.add_parser("bench", help="measure training and inference speed side by side",
                       description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true",
                   help="print every figure as one JSON object on stdout (progress on stderr)")
    p.add_argument("--out", metavar="FILE",
                   help="also write the JSON to FILE and the Markdown table beside it (.md)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (2 seeds, 1,024 digits, 1 epoch): checks that it runs; "
                        "its figures are not comparable with a full run")
    p.add_argument("--seeds", type=int, default=None, help="seeds for time to 99%% (default 5)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    s = Settings.quick() if args.quick else Settings()
    if args.seeds is not None:
        s.seeds = max(1, args.seeds)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = _finite(run(s, args.device, log))
    table = markdown(result)
    if args.out:
        from lenet import atomic

        out = Path(args.out)
        atomic.write_text(out, json.dumps(result, indent=2) + "\n")
        atomic.write_text(out.with_suffix(".md"), table)
        log(f"wrote {out} and {out.with_suffix('.md')}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="")
    return 0
