"""``lenet export --format web``: the draw-a-digit page as a static site that needs no server.

:func:`describe` turns a model into a JSON-able list of operations (convolution, pooling, the
1998 trainable subsampling, the sparse C3 as a dense kernel with zeros, linear, the Euclidean
RBF, activations) with every weight packed into one float32 little-endian buffer. It finds the
operations by running the model once with a forward hook on every leaf module, as the server's
``/api/activations`` does (:mod:`lenet.serve.activations`), so each operation also says which
layer of the page it draws: a convolution, pooling or dense operation starts a layer, an
activation replaces the values of the layer before it (a layer shows what it passes on). A
:class:`~lenet.models.interfaces.CurvatureModel` (the 1998 network, whose squashing is a plain
function in ``forward``) is run through its layer list, as the server does.

:func:`export_web` writes the site: the server's own page (``lenet/serve/static``: index.html
with its paths made relative, app.js, layers.js, style.css), ``forward.js`` (the forward
pass in JavaScript), ``mnist.js`` (the MNIST preprocessing of a drawing or an image and the
sliders' distortions, in JavaScript) and ``model.js``, the
description and the weights (base64) as one script, so that the page also opens from a
``file://`` URL where browsers refuse ``fetch``. Every file is written atomically.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path
from typing import Any

from lenet.errors import LenetError

STATIC = Path(__file__).parent / "serve" / "static"
COPIED = ("app.js", "layers.js", "forward.js", "mnist.js", "style.css", "favicon.svg")
MODEL_FILE = "model.js"
FORMAT = 1
# The served page names its assets /static/NAME; the site keeps them next to index.html.
_SCRIPTS_AT = '<script src="/static/layers.js"></script>'
_SCRIPTS = ('<script src="model.js"></script>\n<script src="forward.js"></script>\n'
            '<script src="mnist.js"></script>\n<script src="layers.js"></script>')


class WebExportError(LenetError):
    """The model has a layer the web page cannot run, or an unsupported preprocessing."""


class _Weights:
    """The float32 buffer every weight goes into; a weight is described by offset and shape."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.count = 0

    def add(self, tensor: Any) -> dict[str, Any]:
        flat = tensor.detach().float().cpu().contiguous().flatten().tolist()
        ref = {"offset": self.count, "shape": list(tensor.shape)}
        self.parts.append(struct.pack(f"<{len(flat)}f", *flat))
        self.count += len(flat)
        return ref

    def data(self) -> bytes:
        return b"".join(self.parts)


# --------------------------------------------------------------------------- tracing
def _leaves(module: Any) -> list[Any]:
    return [m for m in module.modules() if next(m.children(), None) is None]


def _trace(model: Any, x: Any) -> list[tuple[str, Any, tuple[int, ...], tuple[int, ...]]]:
    """Every leaf module call of one forward pass, in order: (name, module, in, out shape)."""
    import torch

    from lenet.models.interfaces import CurvatureModel

    names = {id(m): n for n, m in model.named_modules()}
    calls: list[tuple[str, Any, tuple[int, ...], tuple[int, ...]]] = []

    def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
            name = names.get(id(module)) or type(module).__name__.lower()
            calls.append((name, module, tuple(inputs[0].shape[1:]), tuple(output.shape[1:])))

    if isinstance(model, CurvatureModel):
        layers = model.curvature_layers()
        hooked = {id(m): m for m in [*_leaves(model), *(m for la in layers for m in _leaves(la))]}

        def run(inp: Any) -> Any:
            for layer in layers:
                inp = layer(inp)
            return model.curvature_head(inp)
    else:
        hooked, run = {id(m): m for m in _leaves(model)}, model
    handles = [m.register_forward_hook(hook) for m in hooked.values()]
    try:
        with torch.inference_mode():
            run(x)
    finally:
        for h in handles:
            h.remove()
    return calls


# --------------------------------------------------------------------------- operations
def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _conv(module: Any, weights: _Weights) -> dict[str, Any]:
    from torch import nn

    from lenet.models.interfaces import SparseConvolution

    if isinstance(module, SparseConvolution):
        mask = module.mask()
        table = [[int(i) for i in row.nonzero().flatten()] for row in mask]
        w = module.dense_weight()
        return {"op": "conv", "weight": weights.add(w), "bias": weights.add(module.bias),
                "stride": [1, 1], "padding": [0, 0], "kernel": list(w.shape[2:]),
                "table": table, "sparse": True}
    assert isinstance(module, nn.Conv2d)
    kernel = _pair(module.kernel_size)
    if module.groups != 1 or _pair(module.dilation) != [1, 1] \
            or module.padding_mode != "zeros":
        raise WebExportError(f"convolution {module}: the web page runs only plain convolutions "
                             "(groups 1, dilation 1, zero padding); serve it with `lenet serve`")
    if isinstance(module.padding, str):  # "same" or "valid"
        padding = [(k - 1) // 2 if module.padding == "same" else 0 for k in kernel]
    else:
        padding = _pair(module.padding)
    cin = module.in_channels
    return {"op": "conv", "weight": weights.add(module.weight),
            "bias": None if module.bias is None else weights.add(module.bias),
            "stride": _pair(module.stride), "padding": padding, "kernel": kernel,
            "table": [list(range(cin)) for _ in range(module.out_channels)], "sparse": False}


def _pool(module: Any) -> dict[str, Any]:
    from torch import nn

    kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
    if _pair(module.padding) != [0, 0] or module.ceil_mode \
            or (isinstance(module, nn.MaxPool2d) and _pair(module.dilation) != [1, 1]):
        raise WebExportError(f"pooling {module}: the web page runs only unpadded pooling; "
                             "serve it with `lenet serve`")
    kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
    return {"op": kind, "kernel": kernel, "stride": stride}


def _operation(module: Any, weights: _Weights) -> dict[str, Any] | None:
    """One module as a web operation; None for one that does nothing in eval mode."""
    from torch import nn

    from lenet.models.interfaces import SparseConvolution
    from lenet.models.lenet1998 import EuclideanRBF, Squash, Subsampling

    acts = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", Squash: "squash"}
    if type(module) in acts:
        return {"op": "act", "fn": acts[type(module)]}
    if isinstance(module, (nn.Conv2d, SparseConvolution)):
        return _conv(module, weights)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool(module)
    if isinstance(module, Subsampling):
        source = None if module.source is None else [int(s) for s in module.source]
        return {"op": "subsample", "source": source,
                "coefficient": weights.add(module.coefficient), "bias": weights.add(module.bias)}
    if isinstance(module, nn.Linear):
        return {"op": "linear", "weight": weights.add(module.weight),
                "bias": None if module.bias is None else weights.add(module.bias)}
    if isinstance(module, EuclideanRBF):
        return {"op": "rbf", "codes": weights.add(module.codes)}
    if isinstance(module, (nn.Flatten, nn.Dropout, nn.Identity)):
        return None
    raise WebExportError(f"layer {type(module).__name__}: the web page cannot run it (it runs "
                         "convolution, pooling, subsampling, linear, RBF, ReLU, tanh, sigmoid "
                         "and the 1998 squashing); serve this model with `lenet serve`")


def _reads(op: dict[str, Any], inp: tuple[int, ...], out: tuple[int, ...]) -> dict[str, Any]:
    """How a unit of the layer reads the previous one, as /api/activations says it."""
    if op["op"] == "conv":
        return {"type": "conv", "kernel": op["kernel"], "stride": op["stride"],
                "padding": op["padding"], "table": op["table"], "sparse": op["sparse"]}
    if op["op"] in ("maxpool", "avgpool", "subsample"):
        cin, cout = inp[0], out[0]
        window = [max(1, inp[1] // out[1]), max(1, inp[2] // out[2])]
        return {"type": "pool", "kernel": window, "stride": window, "padding": [0, 0],
                "table": [[o * cin // cout] for o in range(cout)], "sparse": False}
    return {"type": "dense"}


_KINDS = {"conv": "conv", "maxpool": "pool", "avgpool": "pool", "subsample": "pool",
          "linear": "linear", "rbf": "linear"}


def _rbf(model: Any, layers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The RBF codes as the page draws them (as /api/activations' ``rbf``), or None."""
    from lenet.models.interfaces import RBFOutput

    if not isinstance(model, RBFOutput) or len(layers) < 3:
        return None
    codes = model.rbf_bitmaps().detach().float().cpu()
    features = layers[-2]
    if _numel(features["shape"]) != codes[0].numel():
        return None
    return {"codes": codes.flatten(1).tolist(), "shape": list(codes.shape[1:]),
            "features": features["name"]}


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def describe(model: Any, meta: Any) -> tuple[dict[str, Any], bytes]:
    """(the JSON-able description of `model` for forward.js, its float32 weights buffer)."""
    import torch

    from lenet.models.interfaces import RBFOutput

    prep = meta.preprocessing
    if prep.resize is not None or prep.deslant:
        raise WebExportError(f"model {meta.model}: its preprocessing (resize or deslant) is not "
                             "done by the web page; serve it with `lenet serve`")
    side = prep.input_size
    was_training = model.training
    model.eval()
    try:
        calls = _trace(model, torch.zeros(1, 1, side, side))
    finally:
        model.train(was_training)
    weights = _Weights()
    layers: list[dict[str, Any]] = [{"name": "input", "kind": "input", "shape": [1, side, side],
                                     "reads": {}}]
    ops: list[dict[str, Any]] = []
    for name, module, inp, out in calls:
        op = _operation(module, weights)
        if op is None:
            continue
        if op["op"] == "act":  # the input shows itself, not an activation of it
            op["layer"] = len(layers) - 1 if len(layers) > 1 else None
        else:
            op["layer"] = len(layers)
            layers.append({"name": name, "kind": _KINDS[op["op"]], "shape": list(out),
                           "reads": _reads(op, inp, out)})
        ops.append({**op, "out": list(out)})
    if len(layers) < 2:
        raise WebExportError(f"model {meta.model}: no layer the web page can run was found")
    layers[-1]["kind"] = "rbf" if isinstance(model, RBFOutput) else "output"
    doc = {"format": FORMAT, "model": meta.model, "dataset": meta.dataset,
           "classes": [str(c) for c in meta.classes], "test_accuracy": meta.test_accuracy,
           "preprocessing": {"mean": prep.mean, "std": prep.std, "pad": prep.pad},
           "layers": layers, "ops": ops, "rbf": _rbf(model, layers), "weights": weights.count}
    blob = weights.data()
    _check(doc, blob, model, meta)
    return doc, blob


# --------------------------------------------------------------------------- the check
def _tensor(blob: bytes, ref: dict[str, Any]) -> Any:
    import torch

    n = _numel(ref["shape"])
    values = struct.unpack_from(f"<{n}f", blob, 4 * ref["offset"])
    return torch.tensor(values, dtype=torch.float32).reshape(ref["shape"])


def _apply(op: dict[str, Any], x: Any, blob: bytes) -> Any:
    """One operation of a description, in torch (what forward.js does, for the check)."""
    import torch
    import torch.nn.functional as F

    kind, bias = op["op"], op.get("bias")
    b = None if bias is None else _tensor(blob, bias)
    if kind == "conv":
        return F.conv2d(x, _tensor(blob, op["weight"]), b, op["stride"], op["padding"])
    if kind in ("maxpool", "avgpool"):
        pool = F.max_pool2d if kind == "maxpool" else F.avg_pool2d
        return pool(x, op["kernel"], op["stride"])
    if kind == "subsample":
        x = x if op["source"] is None else x[:, op["source"]]
        coef = _tensor(blob, op["coefficient"])[:, None, None]
        return F.avg_pool2d(x, 2) * 4.0 * coef + _tensor(blob, bias)[:, None, None]
    if kind == "linear":
        return F.linear(x.flatten(1), _tensor(blob, op["weight"]), b)
    if kind == "rbf":
        return -(x.flatten(1).unsqueeze(1) - _tensor(blob, op["codes"])).square().sum(-1)
    fns = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "squash": lambda a: 1.7159 * torch.tanh(a * (2.0 / 3.0))}
    return fns[op["fn"]](x)


def run_description(doc: dict[str, Any], blob: bytes, x: Any) -> Any:
    """The scores a description computes for the preprocessed input `x` (N, 1, H, W)."""
    for op in doc["ops"]:
        x = _apply(op, x, blob)
    return x


def _check(doc: dict[str, Any], blob: bytes, model: Any, meta: Any) -> None:
    """The description must give the model's own scores: a function applied outside any module
    (``F.relu`` in a forward) is invisible to hooks and would otherwise be silently lost."""
    import torch

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


# --------------------------------------------------------------------------- the site
def _page() -> str:
    """The served index.html with its assets next to it and the model's scripts added."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    if _SCRIPTS_AT not in html:  # guards this module against a change of the page
        raise AssertionError(f"{STATIC / 'index.html'} lost {_SCRIPTS_AT}")
    return html.replace(_SCRIPTS_AT, _SCRIPTS).replace('"/static/', '"')


def model_script(doc: dict[str, Any], blob: bytes) -> str:
    """model.js: the description and the weights, as window.LENET_MODEL."""
    data = {**doc, "weights_base64": base64.b64encode(blob).decode("ascii")}
    return ("// Written by `lenet export --format web`: the network for forward.js.\n"
            f"window.LENET_MODEL = {json.dumps(data, separators=(',', ':'))};\n")


def default_out(weights_path: str | os.PathLike[str]) -> Path:
    """./NAME-web for bundled weights, else WEIGHTS_FILE_STEM-web next to the weights."""
    from lenet.weights import is_bundled, resolve_path

    if is_bundled(weights_path):
        return Path(f"{os.fspath(weights_path)}-web")
    path = resolve_path(weights_path)
    return path.with_name(f"{path.stem}-web")


def export_web(weights_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
               ) -> Path:
    """Write the static site for the weights into `out` (default :func:`default_out`); returns
    the folder. The folder is checked first, before any weights are loaded."""
    from lenet import atomic

    folder = atomic.ensure_writable_dir(default_out(weights_path) if out is None else out)
    from lenet import weights  # imports torch: only once the folder is known to be writable

    model, meta = weights.load_model(weights_path)
    doc, blob = describe(model, meta)
    files = {name: (STATIC / name).read_bytes() for name in COPIED}
    files["index.html"] = _page().encode("utf-8")
    files[MODEL_FILE] = model_script(doc, blob).encode("utf-8")
    for name, data in files.items():
        atomic.write_bytes(folder / name, data)  # with open()'s mode: a web server can read it
    return folder
