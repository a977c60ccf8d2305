"""Per-layer output shape, trainable parameters and connections, as the 1998 paper counts them.

A *connection* is one multiply (or one add of a bias) feeding one output unit: a 5x5
convolution with a bias has 26 connections per output unit. Layers can override the count with
a ``connections(output_shape)`` method (the 1998 network's sparse C3 and its subsampling do).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lenet.models import count_parameters, eval_mode, get_spec
from lenet.models.interfaces import CountsConnections


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: list[int]
    params: int
    connections: int


def _connections(module: nn.Module, out: torch.Tensor) -> int:
    units = math.prod(out.shape[1:])
    if isinstance(module, CountsConnections):
        return int(module.connections(tuple(out.shape[1:])))
    if isinstance(module, nn.Conv2d):
        per_unit = module.weight[0].numel() + (module.bias is not None)
        return units * per_unit
    if isinstance(module, nn.Linear):
        return units * (module.in_features + (module.bias is not None))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = module.kernel_size
        return units * (k * k if isinstance(k, int) else math.prod(k))
    return 0


def _is_layer(module: nn.Module) -> bool:
    if isinstance(module, CountsConnections):
        return True
    has_children = any(True for _ in module.children())
    return not has_children and isinstance(module, (nn.Conv2d, nn.Linear, nn.MaxPool2d,
                                                    nn.AvgPool2d))


def summarize(model: nn.Module, input_size: int) -> list[LayerRow]:
    rows: list[LayerRow] = []
    hooks = []
    counted: set[str] = set()

    def hook(name: str):
        def fn(module: nn.Module, _inputs, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append(LayerRow(name, type(module).__name__, list(out.shape[1:]), params,
                                 _connections(module, out)))
        return fn

    for name, module in model.named_modules():
        # A custom layer (one that counts its connections) is counted whole, not by its parts.
        if _is_layer(module) and not any(name.startswith(p + ".") for p in counted):
            hooks.append(module.register_forward_hook(hook(name)))
            if isinstance(module, CountsConnections):
                counted.add(name)
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, 1, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
    return rows


def total_connections(model: nn.Module, input_size: int) -> int:
    """Connections of the whole model: the multiply-accumulates it spends on one digit, as the
    1998 paper counts them (Figs. 11-12)."""
    return sum(r.connections for r in summarize(model, input_size))


def summary_dict(name: str) -> dict:
    spec = get_spec(name)
    model = spec.build()
    rows = summarize(model, spec.input_size)
    return {
        "model": name,
        "input_shape": [1, spec.input_size, spec.input_size],
        "layers": [asdict(r) for r in rows],
        "total_params": count_parameters(model),
        "total_connections": sum(r.connections for r in rows),
    }


def format_summary(d: dict) -> str:
    lines = [f"{d['model']}  input {'x'.join(map(str, d['input_shape']))}",
             f"{'layer':<12}{'type':<18}{'output':<14}{'params':>10}{'connections':>14}"]
    for r in d["layers"]:
        shape = "x".join(map(str, r["output_shape"]))
        lines.append(f"{r['name']:<12}{r['kind']:<18}{shape:<14}{r['params']:>10,}"
                     f"{r['connections']:>14,}")
    lines.append(f"{'total':<44}{d['total_params']:>10,}{d['total_connections']:>14,}")
    return "\n".join(lines)
