"""Where a batch-64 training step of `lenet train --config lenet5-fast` goes, by part.

    python benchmarks/epoch_breakdown.py [--steps 300] [--batch-size 64] [--json]

Builds autograd's step for the recipe, the one the trainer runs with `--set step=torch` or
without numba (its model in channels-last memory, its fused SGD with Nesterov momentum,
label-smoothed cross-entropy, the recipe's data on the device; with numba the trainer runs the
compiled step of lenet.training.steps.lenet5_numba instead, which the profiler cannot split),
times `--steps` steps after 50 of warm-up, then runs the same steps under torch.profiler and
splits the ops' own time into C1 / C3 forward and backward, pooling, activations, the dense
layers, the loss, the optimizer, and batch gathering; what the profiler does not see in an op
(the autograd engine, Python, dispatch) is "framework". The parts are scaled to the unprofiled
step time, so they add up to it. The fraction of fp32 peak uses the model's training FLOPs
(torch.utils.flop_counter) and `lenet bench`'s matmul peak. Used for BENCHMARKS.md, issue 17.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch

from lenet.bench import hardware
from lenet.config import resolve
from lenet.models import create, get_spec
from lenet.models.losses import make_loss
from lenet.runtime import cpu as lenet_cpu
from lenet.runtime import threads as lenet_threads
from lenet.training.batches import load_splits
from lenet.training.optim import make_optimizer

PARTS = ("C1 forward", "C1 backward", "C3 forward", "C3 backward", "pooling forward",
         "pooling backward", "activations", "dense layers (fwd+bwd)", "loss", "optimizer",
         "batch gathering", "other ops", "framework (autograd engine, Python, dispatch)")


def _part(name: str, shapes: list) -> str:
    """The part an op belongs to, by its name and its input shapes."""
    first = shapes[0] if shapes and shapes[0] else []
    c1 = len(first) == 4 and first[1] == 1
    if name in ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution",
                "aten::conv2d"):
        return "C1 forward" if c1 else "C3 forward"
    if name in ("aten::convolution_backward", "aten::mkldnn_convolution_backward"):
        # its inputs are (grad_output, input, weight): C1's grad has 6 channels at 28x28
        second = shapes[1] if len(shapes) > 1 and shapes[1] else []
        return "C1 backward" if len(second) == 4 and second[1] == 1 else "C3 backward"
    if "max_pool2d" in name:
        return "pooling backward" if "backward" in name else "pooling forward"
    if name in ("aten::relu", "aten::relu_", "aten::threshold_backward", "aten::clamp_min"):
        return "activations"
    if name in ("aten::addmm", "aten::mm", "aten::linear", "aten::t", "aten::sum"):
        return "dense layers (fwd+bwd)"
    if any(k in name for k in ("log_softmax", "nll_loss", "cross_entropy", "_softmax")):
        return "loss"
    if "foreach" in name or "fused_sgd" in name or "sgd" in name.lower():
        return "optimizer"
    if name in ("aten::index", "aten::index_select", "aten::randperm"):
        return "batch gathering"
    return "other ops"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--config", default="lenet5-fast")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    threads = lenet_threads.default_threads()
    if threads:
        torch.set_num_threads(threads)
    cfg = resolve(a.config, {"batch_size": a.batch_size, "device": "cpu"})
    train, _, _ = load_splits(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = create(cfg.model).to(memory_format=fmt).train()
    train.inputs = get_spec(cfg.model).preprocessing(train.images)  # as the trainer does
    opt = make_optimizer(cfg, model)
    loss_fn = make_loss(cfg.loss if cfg.loss != "auto" else "cross-entropy",
                        label_smoothing=cfg.label_smoothing)
    n, bs = len(train.labels), a.batch_size
    perm = torch.randperm(n)

    def step(k: int) -> None:
        idx = perm[(k * bs) % (n - bs):(k * bs) % (n - bs) + bs]
        x = train.inputs[idx].contiguous(memory_format=fmt)
        loss = loss_fn(model(x), train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for k in range(50):
        step(k)
    best = float("inf")
    for _ in range(3):  # the fastest of 3 rounds, as lenet bench times its rows
        started = time.perf_counter()
        for k in range(a.steps):
            step(k)
        best = min(best, (time.perf_counter() - started) / a.steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        started = time.perf_counter()
        for k in range(a.steps):
            step(k)
        profiled = (time.perf_counter() - started) / a.steps
    parts: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages(group_by_input_shape=True):
        parts[_part(ev.key, ev.input_shapes)] += ev.self_cpu_time_total / 1e6 / a.steps
    # Ops run on up to `threads` threads; the profiler records the calling thread's wall time
    # of each op, so op time plus "framework" is the step's wall time.
    parts[PARTS[-1]] = max(profiled - sum(parts.values()), 0.0)
    scale = best / profiled
    flops = hardware.train_step_flops(cfg.model, bs)  # per image
    peak = hardware.matmul_peak_gflops(torch.device("cpu"))
    result = {"cpu": lenet_cpu.cpu_name(), "isa": lenet_cpu.cpu_isa(),
              "threads": torch.get_num_threads(), "batch_size": bs,
              "step_ms": best * 1e3, "images_per_s": bs / best,
              "epoch_s_60000": 60000 / bs * best,
              "gflops": flops * bs / best / 1e9, "peak_gflops": peak,
              "fraction_of_peak": flops * bs / best / 1e9 / peak,
              "parts_ms": {k: parts.get(k, 0.0) * scale * 1e3 for k in PARTS}}
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['cpu']} ({result['isa']}), {result['threads']} threads, batch {bs}: "
          f"{result['step_ms']:.2f} ms/step, {result['images_per_s']:,.0f} img/s, "
          f"{result['gflops']:.1f} GFLOP/s = {100 * result['fraction_of_peak']:.1f} % of "
          f"{peak:.1f} GFLOP/s peak")
    print("| part | ms/step | share |\n|---|---:|---:|")
    for k, v in result["parts_ms"].items():
        print(f"| {k} | {v:.3f} | {100 * v / result['step_ms']:.1f} % |")


if __name__ == "__main__":
    main()
