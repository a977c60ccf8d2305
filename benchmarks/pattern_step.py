"""The paper's per-pattern SDLM step (lenet5-1998, batch 1): torch step against numba step.

    python benchmarks/pattern_step.py [--patterns 500] [--repeats 7] [--json]

Both steps (and the numba step as the trainer calls it, ``sequence`` on chunks of
``lenet.training.steps.PATTERN_CHUNK`` patterns: "chunked") train their own copy of the same initial
model on the same real MNIST digits, in this one process, one thread (as the trainer runs them),
alternating in rounds so that a busy machine slows them alike. Each round times ``--patterns``
steps; the median round counts, as wall time and as this thread's CPU time (the
latter is what the step costs when other processes take turns on the core). The numba step's
first call (compiling, ~15-25 s, or loading numba's on-disk cache, under a second) is reported
apart and excluded; ``NUMBA_CPU_NAME=haswell`` times its AVX2 code on an AVX-512 machine.
Prints the CPU model and its ISA flags from /proc/cpuinfo: never compare figures across
machines. Pin it to one core for steadier figures: ``taskset -c 1 python ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu() -> dict[str, object]:
    """The CPU model and which of FLAGS it has (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "flags": []}
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), "unknown")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])
    return {"model": model, "flags": [f for f in FLAGS if f in flags]}


def _round(step: Callable, x, y, start: int, patterns: int, chunk: int = 1
           ) -> tuple[float, float]:
    wall, cpu_t = time.perf_counter(), time.thread_time()
    for i in range(start, start + patterns, chunk):
        n = min(chunk, start + patterns - i)
        step(x[i:i + n], y[i:i + n])
    return ((time.perf_counter() - wall) / patterns * 1e6,
            (time.thread_time() - cpu_t) / patterns * 1e6)


def measure(patterns: int, repeats: int) -> dict[str, object]:
    import torch

    from lenet import data
    from lenet.models import create, get_spec
    from lenet.training.optim import SDLM
    from lenet.training.steps import PATTERN_CHUNK, pattern_numba
    from lenet.training.steps.pattern import PatternStep

    images, labels = data.load("mnist", "train")
    x = get_spec("lenet5-1998").preprocessing(images[:patterns * (repeats + 1)])
    y = labels[:patterns * (repeats + 1)]
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # as the trainer's per-pattern path
    torch.manual_seed(0)
    model = create("lenet5-1998")
    steps = {}
    for name, cls in (("torch", PatternStep), ("numba", pattern_numba.NumbaPatternStep),
                      ("chunked", pattern_numba.NumbaPatternStep)):
        m = create("lenet5-1998")
        m.load_state_dict(model.state_dict())
        opt = SDLM(m.parameters(), lr=5e-4)
        opt.before_epoch(m, (x[:500], y[:500]), "rbf-map")
        steps[name] = cls(m, opt, "rbf-map")
    # The trainer's call: NumbaPatternStep.sequence on PATTERN_CHUNK patterns at a time.
    chunks = {"chunked": PATTERN_CHUNK}
    steps["chunked"] = steps["chunked"].sequence
    started = time.perf_counter()
    steps["numba"](x[:1], y[:1])  # compiles
    compile_s = time.perf_counter() - started
    for name, step in steps.items():  # warm-up
        _round(step, x, y, 0, min(50, patterns), chunks.get(name, 1))
    rounds: dict[str, list[tuple[float, float]]] = {n: [] for n in steps}
    for r in range(repeats):
        for name, step in steps.items():
            rounds[name].append(_round(step, x, y, patterns * (r + 1), patterns,
                                       chunks.get(name, 1)))
    out: dict[str, object] = {"cpu": cpu(), "patterns": patterns, "repeats": repeats,
                              "numba_compile_s": round(compile_s, 2)}
    for name, rs in rounds.items():
        out[f"{name}_us_wall"] = round(statistics.median(w for w, _ in rs), 1)
        out[f"{name}_us_cpu"] = round(statistics.median(c for _, c in rs), 1)
    out["speedup_cpu"] = round(out["torch_us_cpu"] / out["numba_us_cpu"], 2)
    out["numba_pass_s"] = round(60_000 * out["chunked_us_wall"] / 1e6, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patterns", type=int, default=500, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per step (median)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args()
    out = measure(a.patterns, a.repeats)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    c = out["cpu"]
    print(f"CPU {c['model']} ({', '.join(c['flags']) or 'no listed flags'}), one thread")
    print(f"numba first step (compile, or load from numba's cache): {out['numba_compile_s']} s")
    for name in ("torch", "numba", "chunked"):
        print(f"{name:7s} {out[f'{name}_us_wall']:8.1f} us/pattern wall  "
              f"{out[f'{name}_us_cpu']:8.1f} us/pattern CPU")
    print(f"speed-up (CPU time) {out['speedup_cpu']}x; a 60,000-pattern pass with numba in the "
          f"trainer's chunks {out['numba_pass_s']} s")


if __name__ == "__main__":
    main()
