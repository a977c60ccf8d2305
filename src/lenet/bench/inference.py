"""Inference speed of lenet5: latency at batch 1 and images/s at batch 1024, for each torch path
worth trying on this device and for ONNX Runtime through `lenet.inference.export`."""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lenet.bench.hardware import ROUNDS, best_of
from lenet.inference.export import INPUT_NAME, OUTPUT_NAME, make_session, to_onnx
from lenet.models import create, get_spec, weights
from lenet.runtime.cpu import cpu_has_bf16

Call = Callable[[], Any]


def _inference_model(device: Any):
    torch.manual_seed(0)
    spec = get_spec("lenet5")
    model = create("lenet5").to(device).eval()
    meta = weights.WeightsMeta("lenet5", spec.preprocessing, "mnist",
                               [str(i) for i in range(10)], None, {})
    return model, meta


# --------------------------------------------------------------------------- torch paths
# Each takes the model and an input and gives the zero-argument call that is timed.
def _eager(model: Any, x: Any) -> Call:
    def call():
        with torch.inference_mode():
            return model(x)
    return call


def _channels_last(cl_model: Any, x: Any) -> Call:
    xc = x.contiguous(memory_format=torch.channels_last)

    def call():
        with torch.inference_mode():
            return cl_model(xc)
    return call


def _jit_frozen(model: Any, x: Any) -> Call:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, still measured here
        traced = torch.jit.freeze(torch.jit.trace(model, x[:2]).eval())

    def call():
        with torch.inference_mode():
            return traced(x)
    return call


def _native_conv(model: Any, x: Any) -> Call:
    """ATen's own convolution kernels: less per-call overhead than oneDNN for tiny batches."""
    def call():
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            with torch.inference_mode():
                return model(x)
        finally:
            torch.backends.mkldnn.enabled = enabled
    return call


def _channels_last_bf16(cl_model: Any, x: Any) -> Call:
    """bf16 autocast: fp32 weights and input, bf16 matmuls (changes the last digits of the
    scores, so it is a row of its own, never a silent default)."""
    xc = x.contiguous(memory_format=torch.channels_last)
    device_type = x.device.type

    def call():
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16):
            return cl_model(xc)
    return call


def _torch_paths(model: Any, device: Any) -> dict[str, Callable[[Any], Call]]:
    """Candidate torch inference paths: name -> (input -> zero-argument call)."""
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    paths: dict[str, Callable[[Any], Call]] = {
        "eager": functools.partial(_eager, model),
        "channels_last": functools.partial(_channels_last, cl_model),
        "jit_frozen": functools.partial(_jit_frozen, model)}
    if device.type == "cpu":
        paths["native_conv"] = functools.partial(_native_conv, model)
    if device.type == "cuda" or cpu_has_bf16():
        paths["channels_last_bf16"] = functools.partial(_channels_last_bf16, cl_model)
    return paths


def _rounds(repeats: float) -> int:
    """Timed rounds per figure: ROUNDS, or 2 for the tiny settings of `--quick` (whose figures
    only show that every path runs)."""
    return ROUNDS if repeats >= 0.5 else 2


def _measure_inference(make: Callable[[Any], Call], device: Any, repeats: float,
                       side: int = 32) -> dict[str, float]:
    x1 = torch.randn(1, 1, side, side, device=device)
    xb = torch.randn(1024, 1, side, side, device=device)
    n1 = max(20, int(2000 * repeats))
    nb = max(3, int(40 * repeats))
    lat = best_of(make(x1), n1, _rounds(repeats), device, warmup=20)
    thr = best_of(make(xb), nb, _rounds(repeats), device)
    return {"latency_us_batch1": lat * 1e6, "images_per_s_batch1024": 1024 / thr}


# --------------------------------------------------------------------------- ONNX Runtime
def _ort_sessions(proto: bytes) -> tuple[tuple[str, Any, bool], ...]:
    """(row name, session, IO-bound) for ORT's defaults, lenet's session, IO-bound calls, and
    a one-thread session (the latency setting: no thread hand-off per operator)."""
    import onnxruntime as ort  # noqa: PLC0415  (extra: onnx)

    session = make_session(proto)
    latency_session = make_session(proto, threads=1)
    plain = ort.SessionOptions()  # ORT's own defaults, to show what make_session's options buy
    plain.log_severity_level = 3
    default_session = ort.InferenceSession(proto, plain, providers=["CPUExecutionProvider"])
    return (("onnxruntime_defaults", default_session, False),
            ("onnxruntime", session, False),
            ("onnxruntime_iobinding", session, True),
            ("onnxruntime_1thread_iobinding", latency_session, True))


def _ort_call(sess: Any, x: Any, bound: bool) -> Call:
    if bound:
        binding = sess.io_binding()
        binding.bind_cpu_input(INPUT_NAME, x)
        binding.bind_output(OUTPUT_NAME)
        return lambda: sess.run_with_iobinding(binding)
    return lambda: sess.run(None, {INPUT_NAME: x})


def _ort_inference(model: Any, meta: Any, repeats: float) -> dict[str, dict[str, float]]:
    """ONNX Runtime through `lenet.inference.export`, on the CPU."""
    proto = to_onnx(model, meta).SerializeToString()
    side = meta.preprocessing.input_size
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    n1, nb = max(20, int(3000 * repeats)), max(3, int(40 * repeats))
    cpu = torch.device("cpu")
    for name, sess, bound in _ort_sessions(proto):
        x1 = rng.standard_normal((1, 1, side, side), dtype=np.float32)
        lat = best_of(_ort_call(sess, x1, bound), n1, _rounds(repeats), cpu, warmup=20)
        xb = rng.standard_normal((1024, 1, side, side), dtype=np.float32)
        thr = best_of(_ort_call(sess, xb, bound), nb, _rounds(repeats), cpu,
                      warmup=max(3, int(20 * repeats)))
        out[name] = {"latency_us_batch1": lat * 1e6, "images_per_s_batch1024": 1024 / thr}
    return out


# --------------------------------------------------------------------------- the rows
def inference(device: Any, repeats: float) -> dict[str, dict[str, float]]:
    """One row per path: latency at batch 1, images/s at batch 1024."""
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


def bests(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The fastest row at batch 1 and at batch 1024, and the best torch path."""
    best_lat = min(rows, key=lambda k: rows[k]["latency_us_batch1"])
    best_thr = max(rows, key=lambda k: rows[k]["images_per_s_batch1024"])
    torch_rows = {k: v for k, v in rows.items() if not k.startswith("onnxruntime")}
    return {"best_latency_us_batch1": rows[best_lat]["latency_us_batch1"],
            "best_latency_backend": best_lat,
            "best_images_per_s_batch1024": rows[best_thr]["images_per_s_batch1024"],
            "best_throughput_backend": best_thr,
            "best_torch_path": max(torch_rows,
                                   key=lambda k: torch_rows[k]["images_per_s_batch1024"])}
