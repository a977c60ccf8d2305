"""Every layer's activations for one input, read with forward hooks, for any model.

:func:`layer_activations` runs the model once with a forward hook on every leaf module and turns
the calls it sees, in order, into a list of :class:`Layer`: the input as the network sees it, then
each convolution, pooling, fully connected layer and the output. Nothing is known about any one
model; what a layer is follows from its module type and its input and output shapes:

- ``conv``: an ``nn.Conv2d`` or a :class:`~lenet.models.interfaces.SparseConvolution` (the 1998
  C3, whose connection table is reported);
- ``pool``: any other module mapping a 4-D tensor to a spatially smaller one (max/average pools,
  the 1998 trainable subsampling);
- ``linear``: a module producing a 2-D tensor of another width (``nn.Linear``, and the 1998 RBF
  layer, reported as ``rbf`` when it is the output of a
  :class:`~lenet.models.interfaces.RBFOutput` model);
- the last layer is the ``output`` (or ``rbf``);
- a module keeping the shape (ReLU, tanh, dropout in eval mode...) is the activation of the
  layer before it: that layer's values become its output, so a layer shows what it passes on;
- one changing only the shape (``Flatten``) is skipped.

Activations applied as plain functions are invisible to hooks; a
:class:`~lenet.models.interfaces.CurvatureModel` (the 1998 network) lists its layers, squashing
included, as modules in :meth:`curvature_layers`, so it is run through that list (and the result
checked against its own ``forward``) so that its layers, too, show their squashed outputs.

Each layer says how its units read the previous layer (``reads``): a convolution its kernel,
stride, padding and, per output map, the input maps it sees; a pool its window and source map;
a dense layer reads every unit. For an RBF-output model, :class:`RBFReading` adds the output
codes as bitmaps and the Euclidean distance of the layer before the output to each code.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lenet.models.interfaces import CurvatureModel, RBFOutput, SparseConvolution

Call = tuple[str, nn.Module, torch.Tensor, torch.Tensor]  # (name, module, input, output)


@dataclass
class Layer:
    name: str
    kind: str  # input, conv, pool, linear, rbf or output
    shape: tuple[int, ...]  # without the batch dimension
    values: torch.Tensor  # float32, `shape`
    reads: dict[str, Any] = field(default_factory=dict)


@dataclass
class RBFReading:
    """An RBF output read back: the codes (classes, h, w), the distances of the features (the
    layer below the output, `features`) to each code, and the nearest."""

    codes: torch.Tensor
    distances: torch.Tensor
    nearest: int
    features: str


@dataclass
class Activations:
    layers: list[Layer]
    scores: torch.Tensor  # (classes,), the model's raw output
    rbf: RBFReading | None = None
    calls: list[Call] = field(default_factory=list)  # the leaf module calls they came from

    def to_dict(self, decimals: int = 4, max_values: int | None = None) -> dict[str, Any]:
        """JSON-ready; values rounded to `decimals`, flat and row-major. Once `max_values`
        numbers have been given, later layers come with ``values: null`` (``omitted``)."""
        budget = math.inf if max_values is None else max_values
        layers = []
        for layer in self.layers:
            n = layer.values.numel()
            keep = n <= budget
            budget -= n if keep else 0
            layers.append({"name": layer.name, "kind": layer.kind, "shape": list(layer.shape),
                           "values": _rounded(layer.values, decimals) if keep else None,
                           "omitted": not keep, "reads": layer.reads})
        out: dict[str, Any] = {"layers": layers, "scores": _rounded(self.scores, decimals)}
        if self.rbf is not None:
            out["rbf"] = {"codes": self.rbf.codes.flatten(1).tolist(),
                          "shape": list(self.rbf.codes.shape[1:]),
                          "distances": _rounded(self.rbf.distances, decimals),
                          "nearest": self.rbf.nearest, "features": self.rbf.features}
        return out


def _rounded(t: torch.Tensor, decimals: int) -> list[float | None]:
    """Flat values rounded; a non-finite one (only from forged weights) is None, as JSON has
    no NaN."""
    flat = t.detach().double().flatten()
    finite = torch.isfinite(flat)
    rounded = torch.round(torch.where(finite, flat, 0.0), decimals=decimals).tolist()
    return [v if ok else None for v, ok in zip(rounded, finite.tolist(), strict=True)]


# --------------------------------------------------------------------------- tracing


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if next(m.children(), None) is None]


def _trace(model: nn.Module, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor],
           extra: list[nn.Module]
           ) -> tuple[list[Call], torch.Tensor]:
    """Every leaf module call of `run(x)` in order: (name, module, input, output).

    The server runs the same model in several threads at once: a hook records only the calls
    made by the thread that set it."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[Call] = []
    me = threading.get_ident()

    def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        if threading.get_ident() == me and inputs and isinstance(inputs[0], torch.Tensor) \
                and isinstance(output, torch.Tensor):
            name = names.get(id(module)) or type(module).__name__.lower()
            calls.append((name, module, inputs[0].detach(), output.detach()))

    hooked = {id(m): m for m in [*_leaves(model), *extra]}
    handles = [m.register_forward_hook(hook) for m in hooked.values()]
    try:
        with torch.inference_mode():
            out = run(x)
    finally:
        for h in handles:
            h.remove()
    return calls, out


def trace(model: nn.Module, x: torch.Tensor) -> tuple[list[Call], torch.Tensor]:
    """The calls of the model's forward, or, for a CurvatureModel, of its layer list and head
    (whose activations are modules), if that gives the forward's own answer."""
    if isinstance(model, CurvatureModel):
        layers = model.curvature_layers()

        def run(inp: torch.Tensor) -> torch.Tensor:
            for layer in layers:
                inp = layer(inp)
            return model.curvature_head(inp)

        extra = [leaf for layer in layers for leaf in _leaves(layer)]
        calls, out = _trace(model, x, run, extra)
        with torch.inference_mode():
            direct = model(x)
        if direct.shape == out.shape and torch.allclose(direct, out, rtol=1e-5, atol=1e-5):
            return calls, direct
    return _trace(model, x, model, [])


# --------------------------------------------------------------------------- layers
def kind_of(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> str | None:
    """conv, pool, linear, act (keeps the shape) or None (a reshape, skipped)."""
    if isinstance(module, (nn.Conv2d, SparseConvolution)):
        return "conv"
    if inp.dim() == 4 and out.dim() == 4 and out.shape[2:] != inp.shape[2:] \
            and out.shape[-1] <= inp.shape[-1]:
        return "pool"
    if isinstance(module, nn.Linear) or (out.dim() == 2 and out.shape != inp.shape
                                         and out.numel() != inp.numel()):
        return "linear"
    if out.shape == inp.shape:
        return "act"
    return None


def _pair(v: int | Sequence[int]) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _conv_reads(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> dict[str, Any]:
    cin, cout = inp.shape[1], out.shape[1]
    if isinstance(module, SparseConvolution):
        mask = module.mask()
        table = [[int(i) for i in torch.nonzero(row).flatten()] for row in mask]
        kernel = list(module.dense_weight().shape[2:])
        return {"type": "conv", "kernel": kernel, "stride": [1, 1], "padding": [0, 0],
                "table": table, "sparse": True}
    assert isinstance(module, nn.Conv2d)
    kernel = _pair(module.kernel_size)
    if isinstance(module.padding, str):  # "same" or "valid"
        padding = [(k - 1) // 2 if module.padding == "same" else 0 for k in kernel]
    else:
        padding = _pair(module.padding)
    per_group_in, per_group_out = cin // module.groups, cout // module.groups
    table = [list(range((o // per_group_out) * per_group_in,
                        (o // per_group_out + 1) * per_group_in)) for o in range(cout)]
    return {"type": "conv", "kernel": kernel, "stride": _pair(module.stride),
            "padding": padding, "table": table, "sparse": False}


def _pool_reads(inp: torch.Tensor, out: torch.Tensor) -> dict[str, Any]:
    """Window = stride = how many input units per output unit; output map o reads input map
    o * in / out (itself when the counts match; LeNet-4's S2 reads each C1 map twice)."""
    cin, cout = inp.shape[1], out.shape[1]
    window = [max(1, inp.shape[2] // out.shape[2]), max(1, inp.shape[3] // out.shape[3])]
    return {"type": "pool", "kernel": window, "stride": window, "padding": [0, 0],
            "table": [[o * cin // cout] for o in range(cout)], "sparse": False}


def reads_of(kind: str, module: nn.Module, inp: torch.Tensor, out: torch.Tensor
             ) -> dict[str, Any]:
    """How a unit of a `kind` layer (see :func:`kind_of`) reads the layer below."""
    if kind == "conv":
        return _conv_reads(module, inp, out)
    if kind == "pool":
        return _pool_reads(inp, out)
    return {"type": "dense"}


def layers_of(calls: list[Call], x: torch.Tensor) -> list[Layer]:
    """The layers that :func:`trace`'s calls make, the input first; the last one is the output
    (``rbf`` for an RBF-output model: see :func:`layer_activations`)."""
    layers = [Layer("input", "input", tuple(x.shape[1:]), x[0].float())]
    for name, module, inp, out in calls:
        kind = kind_of(module, inp, out)
        if kind is None:
            continue
        if kind == "act":
            if len(layers) > 1:  # the input has no activation
                layers[-1].values = out[0].float().reshape(layers[-1].shape)
            continue
        layers.append(Layer(name, kind, tuple(out.shape[1:]), out[0].float(),
                            reads_of(kind, module, inp, out)))
    return layers


def rbf_reading(model: nn.Module, layers: list[Layer]) -> RBFReading | None:
    if not isinstance(model, RBFOutput) or len(layers) < 3:
        return None
    codes = model.rbf_bitmaps().detach().float().cpu()
    features = layers[-2]
    if features.values.numel() != codes[0].numel():
        return None
    d = (features.values.flatten() - codes.flatten(1)).square().sum(1).sqrt()
    return RBFReading(codes, d, int(d.argmin()), features.name)


def layer_activations(model: nn.Module, x: torch.Tensor) -> Activations:
    """Every layer's output for one preprocessed input `x` (1, C, H, W), in eval mode."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one input of shape (1, C, H, W), got {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        calls, scores = trace(model, x)
    finally:
        model.train(was_training)
    layers = layers_of(calls, x)
    if len(layers) > 1:
        layers[-1].kind = "rbf" if isinstance(model, RBFOutput) else "output"
    return Activations(layers, scores[0].float(), rbf_reading(model, layers), calls)
