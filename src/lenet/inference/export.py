"""Saved weights -> a standalone ONNX model (`lenet export`), and ONNX Runtime sessions.

The graph takes the *preprocessed* float input (N, 1, H, W) with a dynamic batch dimension N and
returns the model's raw scores (N, classes); argmax predicts, softmax gives probabilities. What
the input must be is stored in the model's ``metadata_props``, so a consumer never has to guess:

- ``lenet.model``: registry name; ``lenet.dataset``; ``lenet.classes``: JSON list;
- ``lenet.preprocessing``: JSON ``{"mean", "std", "pad", "resize", "deslant"}``, i.e.
  ``x = (pad(resize(deslant?(uint8_digit))) / 255 - mean) / std`` on white-ink-on-black 28x28
  digits made as MNIST was (see :mod:`lenet.inference.predict`; deslant: :mod:`lenet.data.deslant`);
- ``lenet.test_accuracy``, ``lenet.version``, ``lenet.torch_version``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet._version import __version__
from lenet.errors import LenetError
from lenet.models import readers, weights
from lenet.models.metadata import WeightsMeta
from lenet.runtime.threads import available_cores
from lenet.storage import atomic

INPUT_NAME = "input"
OUTPUT_NAME = "scores"
OPSET = 18


class ExportError(LenetError):
    """The model could not be exported, or an ONNX file is not one `lenet export` wrote."""


def to_onnx(model: nn.Module, meta: WeightsMeta) -> Any:
    """A loaded model and its WeightsMeta -> a checked onnx.ModelProto with lenet metadata."""
    try:
        import onnx  # noqa: PLC0415  (extra: onnx)
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx extra ({e.name} is missing): "
                          "pip install 'lenet[onnx]'") from None
    size = meta.preprocessing.input_size
    example = torch.zeros(2, 1, size, size)
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if meta.model == readers.MODEL:  # the SDNN reads a 28-high line of any width: (N, T, 12)
        example = torch.zeros(2, 1, size, 64)
        dims[3] = torch.export.Dim("width", min=28, max=readers.MAX_WIDTH)
    model = model.cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=OPSET, verbose=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=(dims,))
        except Exception as e:  # the exporter raises many kinds; name the model and the cause
            raise ExportError(f"exporting model {meta.model!r} to ONNX failed: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                              ) from None
        finally:
            quiet.setLevel(level)
    if program is None:  # only without dynamo=True
        raise ExportError(f"exporting model {meta.model!r} to ONNX gave no program")
    proto = program.model_proto
    props = {
        "lenet.model": meta.model,
        "lenet.dataset": meta.dataset,
        "lenet.classes": json.dumps(list(meta.classes)),
        "lenet.preprocessing": json.dumps(meta.preprocessing.to_dict()),
        "lenet.test_accuracy": json.dumps(meta.test_accuracy),
        "lenet.version": __version__,
        "lenet.torch_version": torch.__version__,
        "lenet.input": INPUT_NAME,
    }
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "lenet"
    proto.doc_string = (f"lenet {meta.model} on {meta.dataset}: input {INPUT_NAME} float "
                        f"(N,1,{size},{size}) preprocessed as lenet.preprocessing says; output "
                        f"{OUTPUT_NAME} (N,{len(meta.classes)}) scores, argmax predicts")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported ONNX model of {meta.model!r} fails onnx.checker: "
                          f"{e}") from None
    return proto


def export_onnx(weights_path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
                ) -> Path:
    """Export a run directory, weights file or bundled weights' name to ONNX, written
    atomically (default: next to the weights; ``./NAME.onnx`` for bundled ones); returns the
    path.

    The output is checked first, so a read-only place or a directory given as the file fails
    at once (:class:`~lenet.errors.OutputError`), not after the export."""
    if output is None:
        # Bundled weights live inside the installed package: their ONNX goes in the current
        # folder instead, as NAME.onnx.
        bundled = weights.is_bundled(weights_path) or readers.is_reader_name(weights_path)
        output = (Path(f"{os.fspath(weights_path)}.onnx") if bundled
                  else weights.resolve_path(weights_path).with_suffix(".onnx"))
    output = atomic.ensure_writable(output)
    model, meta = (readers.load_reader(weights_path) if readers.is_reader(weights_path)
                   else weights.load_model(weights_path))
    proto = to_onnx(model, meta)
    return atomic.write_bytes(output, proto.SerializeToString())


def make_session(model: bytes | str | os.PathLike[str], threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for `model`. `threads`: intra-op threads, by default one per
    available core (up to 8), which suits batches; 1 gives the lowest single-digit latency (no
    fork and join per operator)."""
    try:
        import onnxruntime as ort  # noqa: PLC0415  (extra: onnx)
    except ImportError:
        raise ExportError("--backend onnxruntime needs onnxruntime: "
                          "pip install 'lenet[onnx]'") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # All graph optimizations (their NCHWc layout transform fuses conv, ReLU and pooling) and
    # one intra-op thread per available core: more digits/s on large batches and a lower
    # batch-1 latency than ORT's own defaults (`lenet bench` measures both; BENCHMARKS.md).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or min(8, available_cores())
    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise ExportError(f"{'ONNX model' if isinstance(model, bytes) else model}: ONNX Runtime "
                          f"cannot load it ({str(e).splitlines()[0]})") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    import onnx  # noqa: PLC0415  (extra: onnx)

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf decode errors have no common public base class
        raise ExportError(f"{path}: not a valid ONNX file ({e})") from None
    return {p.key: p.value for p in proto.metadata_props}
