"""``lenet export --format web``: the draw-a-digit page as a static site that needs no server.

:func:`describe` turns a model into a JSON-able list of operations (convolution, pooling, the
1998 trainable subsampling, the sparse C3 as a dense kernel with zeros, linear, the Euclidean
RBF, activations) with every weight packed into one float32 little-endian buffer. It finds the
operations by running the model once with a forward hook on every leaf module, as the server's
``/api/activations`` does (:mod:`lenet.analysis.activations`), so each operation also says which
layer of the page it draws: a convolution, pooling or dense operation starts a layer, an
activation replaces the values of the layer before it (a layer shows what it passes on). A
:class:`~lenet.models.interfaces.CurvatureModel` (the 1998 network, whose squashing is a plain
function in ``forward``) is run through its layer list, as the server does.

:func:`export_web` writes the site: the server's own page (``lenet/inference/serve/static``:
index.html with its paths made relative, app.js, layers.js, style.css), ``forward.js`` (the
forward pass in JavaScript), ``mnist.js`` (the MNIST preprocessing of a drawing or an image and
the sliders' distortions, in JavaScript) and ``model.js``, the description and the weights
(base64) as one script, so that the page also opens from a ``file://`` URL where browsers
refuse ``fetch``. Every file is written atomically.

The page also reads whole numbers (its number mode) when a reader is exported with it (by
default the bundled default reader, where this install has one): :func:`describe_reader` turns
the :class:`~lenet.models.sdnn.SDNN` (LeNet-5 replicated over the line) into the same kind of
operations, run by ``forward.js`` over a strip of any width, and ``reader.js`` holds them with the
reader's reject threshold; ``read.js`` holds the ports of the line normalization and the Viterbi
decoder (:mod:`lenet.inference.read`), ``number.js`` the number mode.

Never replacing what lenet did not write: the folder must be new or empty, unless `overwrite`
(``--overwrite``); then only the files of an earlier export are replaced or removed. Those are
listed, with their SHA-256, in the folder's :data:`MANIFEST` (``.lenet-export.json``); a file
of one of the site's names that is not listed there (a user's own ``index.html``), or was
changed since, stops the export before anything is written, and every other file in the
folder (hidden ones included) is left alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lenet._version import __version__
from lenet.analysis.activations import kind_of, layer_activations, reads_of
from lenet.errors import LenetError, OutputError
from lenet.models import readers, weights
from lenet.models.interfaces import SparseConvolution
from lenet.models.lenet1998 import EuclideanRBF, Squash, Subsampling, squash
from lenet.models.metadata import WeightsMeta
from lenet.models.readers import DEFAULT_READER
from lenet.models.sdnn import SDNN
from lenet.storage import atomic

STATIC = Path(__file__).parent / "serve" / "static"
COPIED = ("pen.js", "app.js", "layers.js", "forward.js", "mnist.js", "read.js", "number.js",
          "style.css", "favicon.svg")
MODEL_FILE = "model.js"
READER_FILE = "reader.js"  # the number reader (the SDNN), when the site reads numbers
MANIFEST = ".lenet-export.json"  # the files this export wrote, name -> SHA-256
FORMAT = 1
# The served page names its assets /static/NAME; the site keeps them next to index.html.
_SCRIPTS_AT = '<script src="/static/layers.js"></script>'
_SCRIPTS = ('<script src="model.js"></script>\n<script src="forward.js"></script>\n'
            '<script src="mnist.js"></script>\n<script src="layers.js"></script>')
_READER_SCRIPT = '<script src="reader.js"></script>\n'


class WebExportError(LenetError):
    """The model has a layer the web page cannot run, or an unsupported preprocessing."""


class _Weights:
    """The float32 buffer every weight goes into; a weight is described by offset and shape."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.count = 0

    def add(self, tensor: torch.Tensor) -> dict[str, Any]:
        flat = tensor.detach().float().cpu().contiguous().flatten().tolist()
        ref = {"offset": self.count, "shape": list(tensor.shape)}
        self.parts.append(struct.pack(f"<{len(flat)}f", *flat))
        self.count += len(flat)
        return ref

    def data(self) -> bytes:
        return b"".join(self.parts)


# --------------------------------------------------------------------------- operations
def _conv(module: nn.Module, reads: dict[str, Any], buffer: _Weights) -> dict[str, Any]:
    """A convolution: kernel, stride, padding and table as the layer's ``reads`` says."""
    shape = {k: reads[k] for k in ("stride", "padding", "kernel", "table", "sparse")}
    if isinstance(module, SparseConvolution):
        bias = module.bias
        assert isinstance(bias, torch.Tensor)  # the 1998 C3 always has one
        return {"op": "conv", "weight": buffer.add(module.dense_weight()),
                "bias": buffer.add(bias), **shape}
    assert isinstance(module, nn.Conv2d)
    if module.groups != 1 or tuple(module.dilation) != (1, 1) \
            or module.padding_mode != "zeros":
        raise WebExportError(f"convolution {module}: the web page runs only plain convolutions "
                             "(groups 1, dilation 1, zero padding); serve it with `lenet serve`")
    return {"op": "conv", "weight": buffer.add(module.weight),
            "bias": None if module.bias is None else buffer.add(module.bias), **shape}


def _pool(module: nn.Module) -> dict[str, Any]:
    def pair(v: Any) -> list[int]:
        return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]

    kernel, stride = pair(module.kernel_size), pair(module.stride or module.kernel_size)
    if pair(module.padding) != [0, 0] or module.ceil_mode \
            or (isinstance(module, nn.MaxPool2d) and pair(module.dilation) != [1, 1]):
        raise WebExportError(f"pooling {module}: the web page runs only unpadded pooling; "
                             "serve it with `lenet serve`")
    kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
    return {"op": kind, "kernel": kernel, "stride": stride}


def _operation(module: nn.Module, reads: dict[str, Any], buffer: _Weights
               ) -> dict[str, Any] | None:
    """One module as a web operation; None for one that does nothing in eval mode."""
    acts = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", Squash: "squash"}
    if type(module) in acts:
        return {"op": "act", "fn": acts[type(module)]}
    if isinstance(module, (nn.Conv2d, SparseConvolution)):
        return _conv(module, reads, buffer)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool(module)
    if isinstance(module, Subsampling):
        source = None if module.source is None else [int(s) for s in module.source]
        return {"op": "subsample", "source": source,
                "coefficient": buffer.add(module.coefficient), "bias": buffer.add(module.bias)}
    if isinstance(module, nn.Linear):
        return {"op": "linear", "weight": buffer.add(module.weight),
                "bias": None if module.bias is None else buffer.add(module.bias)}
    if isinstance(module, EuclideanRBF):
        return {"op": "rbf", "codes": buffer.add(module.codes)}
    if isinstance(module, (nn.Flatten, nn.Dropout, nn.Identity)):
        return None
    raise WebExportError(f"layer {type(module).__name__}: the web page cannot run it (it runs "
                         "convolution, pooling, subsampling, linear, RBF, ReLU, tanh, sigmoid "
                         "and the 1998 squashing); serve this model with `lenet serve`")


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def describe(model: nn.Module, meta: WeightsMeta) -> tuple[dict[str, Any], bytes]:
    """(the JSON-able description of `model` for forward.js, its float32 weights buffer).

    The layers are :mod:`lenet.analysis.activations`' (what ``/api/activations`` reports); each
    traced module call becomes an operation on the layer it makes or, for an activation, on the
    layer below it."""
    prep = meta.preprocessing
    if prep.resize is not None or prep.deslant:
        raise WebExportError(f"model {meta.model}: its preprocessing (resize or deslant) is not "
                             "done by the web page; serve it with `lenet serve`")
    x = torch.zeros(1, 1, prep.input_size, prep.input_size)
    seen = layer_activations(model, x)
    buffer, ops, index = _Weights(), [], 0
    for _, module, inp, out in seen.calls:
        kind = kind_of(module, inp, out)
        if kind is None:
            continue
        op = _operation(module, reads_of(kind, module, inp, out), buffer)
        index += kind != "act"
        if op is not None:  # the input shows itself, not an activation of it
            op["layer"] = index if kind != "act" or index > 0 else None
            ops.append({**op, "out": list(out.shape[1:])})
    if len(seen.layers) < 2:
        raise WebExportError(f"model {meta.model}: no layer the web page can run was found")
    rbf = seen.rbf and {"codes": seen.rbf.codes.flatten(1).tolist(),
                        "shape": list(seen.rbf.codes.shape[1:]), "features": seen.rbf.features}
    doc = {"format": FORMAT, "model": meta.model, "dataset": meta.dataset,
           "classes": [str(c) for c in meta.classes], "test_accuracy": meta.test_accuracy,
           "reject_margin": meta.reject_margin,
           "preprocessing": {"mean": prep.mean, "std": prep.std, "pad": prep.pad},
           "layers": [{"name": la.name, "kind": la.kind, "shape": list(la.shape),
                       "reads": la.reads} for la in seen.layers],
           "ops": ops, "rbf": rbf, "weights": buffer.count}
    blob = buffer.data()
    _check(doc, blob, model, meta)
    return doc, blob


# --------------------------------------------------------------------------- the check
def _tensor(blob: bytes, ref: dict[str, Any]) -> torch.Tensor:
    n = _numel(ref["shape"])
    values = struct.unpack_from(f"<{n}f", blob, 4 * ref["offset"])
    return torch.tensor(values, dtype=torch.float32).reshape(ref["shape"])


def _apply(op: dict[str, Any], x: torch.Tensor, blob: bytes) -> torch.Tensor:
    """One operation of a description, in torch (what forward.js does, for the check)."""
    kind, bias = op["op"], op.get("bias")
    b = None if bias is None else _tensor(blob, bias)
    if kind == "conv":
        return F.conv2d(x, _tensor(blob, op["weight"]), b, op["stride"], op["padding"],
                        groups=op.get("groups", 1))
    if kind in ("maxpool", "avgpool"):
        pool = F.max_pool2d if kind == "maxpool" else F.avg_pool2d
        return pool(x, op["kernel"], op["stride"])
    if kind == "subsample":
        x = x if op["source"] is None else x[:, op["source"]]
        coef = _tensor(blob, op["coefficient"])[:, None, None]
        return F.avg_pool2d(x, 2) * 4.0 * coef + _tensor(blob, op["bias"])[:, None, None]
    if kind == "linear":
        return F.linear(x.flatten(1), _tensor(blob, op["weight"]), b)
    if kind == "rbf":
        return -(x.flatten(1).unsqueeze(1) - _tensor(blob, op["codes"])).square().sum(-1)
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "squash": squash}
    return fns[op["fn"]](x)


def run_description(doc: dict[str, Any], blob: bytes, x: torch.Tensor) -> torch.Tensor:
    """The scores a description computes for the preprocessed input `x` (N, 1, H, W)."""
    for op in doc["ops"]:
        x = _apply(op, x, blob)
    return x


def _check(doc: dict[str, Any], blob: bytes, model: nn.Module, meta: WeightsMeta) -> None:
    """The description must give the model's own scores: a function applied outside any module
    (``F.relu`` in a forward) is invisible to hooks and would otherwise be silently lost."""
    gen = torch.Generator().manual_seed(0)
    digits = (torch.rand(4, 28, 28, generator=gen) * 255).round().to(torch.uint8)
    x = meta.preprocessing(digits)
    with torch.inference_mode():
        want = model.eval()(x).float()
        got = run_description(doc, blob, x)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise WebExportError(f"model {meta.model}: its layers, run one after the other, do not "
                             "give its output (it applies something outside its modules); the "
                             "web page cannot run it, serve it with `lenet serve`")


# --------------------------------------------------------------------------- the reader
def _plain_conv(module: nn.Conv2d, buffer: _Weights) -> dict[str, Any]:
    return {"op": "conv", "weight": buffer.add(module.weight),
            "bias": None if module.bias is None else buffer.add(module.bias), "table": None,
            "kernel": list(module.kernel_size), "stride": list(module.stride),
            "padding": list(module.padding), "groups": module.groups}


def describe_reader(model: SDNN, meta: WeightsMeta, reading: dict[str, Any]
                    ) -> tuple[dict[str, Any], bytes]:
    """(the JSON-able description of a number reader, an :class:`~lenet.models.sdnn.SDNN`,
    for forward.js's ``lineScores``, its float32 weights buffer). Its operations (the margin's
    background columns, convolutions, ReLU, 2x2 max-pooling) run over a strip of any width;
    `reading` adds what the page's decoder needs (the classes, the reject threshold...).
    Checked against the model on strips of two widths, like :func:`describe`.

    >>> from lenet.models.readers import reader_meta
    >>> doc, blob = describe_reader(SDNN(), reader_meta(0.5, {}), {"margin": 12})
    >>> [op["op"] for op in doc["ops"]][:4], len(blob) == 4 * doc["weights"]
    (['pad', 'conv', 'act', 'maxpool'], True)
    """
    if not isinstance(model, SDNN):
        raise WebExportError(f"reader {meta.model}: the web page reads numbers only with an "
                             "SDNN reader; serve it with `lenet serve`")
    prep = meta.preprocessing
    if prep.resize is not None or prep.deslant or prep.pad:
        raise WebExportError(f"reader {meta.model}: its preprocessing (resize, deslant or pad) "
                             "is not done by the web page; serve it with `lenet serve`")
    buffer, relu = _Weights(), {"op": "act", "fn": "relu"}
    pool = {"op": "maxpool", "kernel": [2, 2], "stride": [2, 2]}
    ops: list[dict[str, Any]] = [{"op": "pad", "width": model.margin,
                                  "value": float(model.background)}] if model.margin else []
    ops += [_plain_conv(model.c1, buffer), relu, pool, _plain_conv(model.c3, buffer), relu,
            pool, _plain_conv(model.c5, buffer), relu, _plain_conv(model.f6, buffer), relu,
            _plain_conv(model.output, buffer)]
    doc = {"format": FORMAT, "model": meta.model, "dataset": meta.dataset,
           "classes": [str(c) for c in meta.classes], "stride": model.stride,
           "centre0": model.centre(0), "preprocessing": {"mean": prep.mean, "std": prep.std,
                                                         "pad": 0},
           "ops": ops, "weights": buffer.count, **reading}
    blob = buffer.data()
    gen = torch.Generator().manual_seed(0)
    for width in (61, 140):  # a few digits' width, and one not a multiple of the stride
        strips = (torch.rand(2, 28, width, generator=gen) * 255).round().to(torch.uint8)
        x = prep(strips)
        with torch.inference_mode():
            want = model.eval()(x).float()
            got = run_line_description(doc, blob, x)
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            raise WebExportError(f"reader {meta.model}: its operations, run one after the "
                                 "other, do not give its output; the web page cannot run it")
    return doc, blob


def run_line_description(doc: dict[str, Any], blob: bytes, x: torch.Tensor) -> torch.Tensor:
    """The (N, T, classes) scores a reader's description computes for normalized strips `x`
    (N, 1, 28, W): what forward.js's ``lineScores`` does, in torch."""
    for op in doc["ops"]:
        if op["op"] == "pad":
            x = F.pad(x, (op["width"], op["width"]), value=op["value"])
        else:
            x = _apply(op, x, blob)
    return x.squeeze(2).transpose(1, 2)


# --------------------------------------------------------------------------- the site
def _page(reads_numbers: bool = False) -> str:
    """The served index.html with its assets next to it and the model's scripts added (and
    the reader's, where the page reads numbers)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    if _SCRIPTS_AT not in html:  # guards this module against a change of the page
        raise AssertionError(f"{STATIC / 'index.html'} lost {_SCRIPTS_AT}")
    scripts = (_READER_SCRIPT if reads_numbers else "") + _SCRIPTS
    return html.replace(_SCRIPTS_AT, scripts).replace('"/static/', '"')


def model_script(doc: dict[str, Any], blob: bytes, variable: str = "LENET_MODEL") -> str:
    """model.js (reader.js): the description and the weights, as window.LENET_MODEL
    (window.LENET_READER)."""
    data = {**doc, "weights_base64": base64.b64encode(blob).decode("ascii")}
    return ("// Written by `lenet export --format web`: the network for forward.js.\n"
            f"window.{variable} = {json.dumps(data, separators=(',', ':'))};\n")


def default_out(weights_path: str | os.PathLike[str]) -> Path:
    """./NAME-web for bundled weights, else WEIGHTS_FILE_STEM-web next to the weights."""
    if weights.is_bundled(weights_path):
        return Path(f"{os.fspath(weights_path)}-web")
    path = weights.resolve_path(weights_path)
    return path.with_name(f"{path.stem}-web")


def export_web(weights_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
               *, overwrite: bool = False,
               reader: str | os.PathLike[str] | None = DEFAULT_READER) -> Path:
    """Write the static site for the weights into `out` (default :func:`default_out`); returns
    the folder. The folder is checked first, before any weights are loaded: it must be new or
    empty, or, with `overwrite`, hold an earlier export whose files (listed in
    :data:`MANIFEST`) are the only ones replaced or removed; see the module's notes.

    `reader`: the reader weights the page reads numbers with (:data:`READER_FILE`; default the
    bundled default reader, left out where this install has none); None: digits only."""
    folder = atomic.ensure_writable_dir(default_out(weights_path) if out is None else out)
    if reader is not None and os.fspath(reader) == DEFAULT_READER \
            and not readers.is_reader_name(DEFAULT_READER):
        reader = None  # an install without the bundled reader: the page reads digits only
    names = [*COPIED, "index.html", MODEL_FILE, *([READER_FILE] if reader is not None else [])]
    stale = _check_folder(folder, names, overwrite)
    model, meta = weights.load_model(weights_path)
    doc, blob = describe(model, meta)
    files = {name: (STATIC / name).read_bytes() for name in COPIED}
    files["index.html"] = _page(reader is not None).encode("utf-8")
    files[MODEL_FILE] = model_script(doc, blob).encode("utf-8")
    if reader is not None:
        sdnn, reader_meta = readers.load_reader(reader)
        line_doc, line_blob = describe_reader(sdnn, reader_meta, {
            "reject": float(reader_meta.extra["reject"]), "margin": sdnn.margin})
        files[READER_FILE] = model_script(line_doc, line_blob, "LENET_READER").encode("utf-8")
    for name, data in files.items():
        atomic.write_bytes(folder / name, data)  # with open()'s mode: a web server can read it
    listing = {"written_by": f"lenet {__version__} export --format web",
               "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    atomic.write_text(folder / MANIFEST, json.dumps(listing, indent=2) + "\n")
    for name in stale:  # an earlier export's files this one does not write again
        (folder / name).unlink(missing_ok=True)
    return folder


def _written(folder: Path) -> set[str]:
    """The files of `folder` an earlier export wrote: listed in its manifest, plain names,
    regular files, unchanged since (their SHA-256 still the one listed)."""
    path = folder / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or path.stat().st_size > 2**16:
            return set()
        listed = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, RecursionError, AttributeError):
        return set()
    if not isinstance(listed, dict):
        return set()
    ours = set()
    for name, digest in listed.items():
        if not (isinstance(name, str) and isinstance(digest, str) and name == Path(name).name
                and name not in ("", ".", "..", MANIFEST)):
            continue
        try:
            if (stat.S_ISREG(os.lstat(folder / name).st_mode)
                    and hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest):
                ours.add(name)
        except OSError:
            continue
    return ours


def _check_folder(folder: Path, names: list[str], overwrite: bool) -> list[str]:
    """Refuse (OutputError) a non-empty `folder` unless `overwrite`, and then any of `names`
    there that lenet did not write; the earlier export's other files (to remove once the new
    one is written)."""
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    if not present:
        return []
    fix = "choose another folder with --out"
    if not overwrite:
        shown = ", ".join(sorted(present)[:4]) + (" ..." if len(present) > 4 else "")
        raise OutputError(f"cannot write into {folder}: it is not empty ({shown}); pass "
                          "--overwrite to replace an earlier export there (only the files "
                          f"lenet wrote, listed in {MANIFEST}), or {fix}")
    ours = _written(folder)
    clash = sorted(n for n in [*names, MANIFEST] if n in present and n not in ours
                   and not (n == MANIFEST and ours))
    if clash:
        raise OutputError(f"cannot write into {folder}: {', '.join(clash)} there is not a file "
                          f"lenet wrote (not listed in {MANIFEST}, or changed since), and "
                          f"--overwrite replaces only those; move it away or {fix}")
    return sorted(ours - set(names))
