"""`lenet.training.optim.eager`: torch optimizers without their dynamo guards compute exactly
the same."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from lenet.training.optim.eager import GUARDED, eager

CASES = [
    (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
    (torch.optim.Adam, {"lr": 1e-3, "weight_decay": 1e-4}),
    (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}),
]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 6 * 6, 10))


def _train(cls: type[torch.optim.Optimizer], kwargs: dict, steps: int = 5
           ) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _model()
    opt = cls(model.parameters(), **kwargs)
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 1, 8, 8, generator=data)
        y = torch.randint(0, 10, (4,), generator=data)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


def _same_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            if not isinstance(vb, dict) or not _same_state(va, vb):
                return False
        elif isinstance(va, torch.Tensor):
            if not (isinstance(vb, torch.Tensor) and torch.equal(va, vb)):
                return False
        elif va != vb:
            return False
    return True


@pytest.mark.parametrize("fused", [False, True], ids=["foreach", "fused"])
@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_eager_steps_and_state_dict_equal_torchs_bit_for_bit(cls, kwargs, fused) -> None:
    kwargs = {**kwargs, "fused": True} if fused else kwargs
    ours_model, ours = _train(eager(cls), kwargs)
    torch_model, theirs = _train(cls, kwargs)
    assert isinstance(ours, cls)
    for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(p, q)
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert _same_state(sd_ours["param_groups"][0], sd_theirs["param_groups"][0])
    assert _same_state({str(k): v for k, v in sd_ours["state"].items()},
                       {str(k): v for k, v in sd_theirs["state"].items()})
    # A state saved by one loads into the other and both go on identically.
    ours.load_state_dict(sd_theirs)
    theirs.load_state_dict(sd_ours)
    assert _same_state(ours.state_dict()["state"], theirs.state_dict()["state"])


def test_eager_class_is_cached_and_unwrapped() -> None:
    cls = eager(torch.optim.SGD)
    assert cls is eager(torch.optim.SGD) and issubclass(cls, torch.optim.SGD)
    assert cls.__name__ == "SGD"
    for name in GUARDED:
        if name != "step":
            assert not hasattr(cls.__dict__[name], "__wrapped__"), name


def test_a_torch_without_wrapped_methods_keeps_its_own_class() -> None:
    class Plain(torch.optim.SGD):
        def step(self, closure=None):  # no __wrapped__: nothing to unwrap safely
            return super().step(closure)

    assert eager(Plain) is Plain


def test_eager_training_never_imports_dynamo() -> None:
    code = """
import sys, torch
from lenet.training.optim.eager import eager
model = torch.nn.Linear(3, 2)
opt = eager(torch.optim.Adam)(model.parameters(), lr=0.1)
opt.zero_grad(); model(torch.randn(4, 3)).sum().backward(); opt.step()
opt.load_state_dict(opt.state_dict())
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"
