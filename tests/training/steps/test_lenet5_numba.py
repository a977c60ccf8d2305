"""The compiled lenet5 step against autograd and the torch training step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("numba", reason="numba is not installed: the compiled step is optional")

from lenet.models import create
from lenet.models.lenet5 import LeNet5
from lenet.training.steps.lenet5_numba import NumbaLeNet5Step, supports


def _data(n: int, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Normalize(0.5, 0.5)'s range, with blank borders as in a digit.
    x = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    x[:, :, :4], x[:, :, -4:] = -1.0, -1.0
    return x, torch.randint(0, classes, (n,), generator=g)


def _twins(channels_last: bool = False, classes: int = 10) -> tuple[LeNet5, LeNet5]:
    torch.manual_seed(0)
    a = LeNet5(num_classes=classes)
    b = LeNet5(num_classes=classes)
    b.load_state_dict(a.state_dict())
    if channels_last:
        a = a.to(memory_format=torch.channels_last)
    return a, b


def _autograd(model: LeNet5, x: torch.Tensor, y: torch.Tensor, smoothing: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    scores = model(x)
    loss = F.cross_entropy(scores, y, label_smoothing=smoothing)
    loss.backward()
    return loss.detach(), scores.detach()


def _assert_grads_close(grads: dict[str, torch.Tensor], ref: LeNet5) -> None:
    """Every gradient to 1e-5 of its largest entry, and in the parameter's own layout."""
    assert list(grads) == [name for name, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        scale = p.grad.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize(("batch", "threads"), [(1, 2), (17, 1), (64, 2), (64, 3), (50, 2)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gradients_match_autograd(batch: int, threads: int, smoothing: float) -> None:
    """One part or several (threads, parts of >= 16 digits, uneven ones included)."""
    model, ref = _twins()
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1), smoothing,
                           threads=threads)
    x, y = _data(batch)
    loss, scores, grads = step.gradients(x, y)
    ref_loss, ref_scores = _autograd(ref, x, y, smoothing)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    _assert_grads_close(grads, ref)


def test_channels_last_and_other_class_counts() -> None:
    """The recipes' channels-last parameters keep their layout in .grad; C5-F6-output work
    for any number of classes."""
    model, ref = _twins(channels_last=True, classes=3)
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1), threads=2)
    x, y = _data(40, classes=3)
    _, scores, grads = step.gradients(x, y)
    _autograd(ref, x, y, 0.0)
    assert scores.shape == (40, 3)
    _assert_grads_close(grads, ref)
    for name, p in model.named_parameters():
        assert grads[name].stride() == p.stride(), name


def test_training_follows_the_torch_step() -> None:
    """Thirty steps of SGD with Nesterov momentum and weight decay, the run's own optimizer
    on both sides: the same losses and, up to float rounding, the same weights."""
    model, ref = _twins()
    kw = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), **kw), 0.1, threads=2)
    opt = torch.optim.SGD(ref.parameters(), **kw)
    initial = {n: p.detach().clone() for n, p in ref.named_parameters()}
    for i in range(30):
        x, y = _data(32, seed=i)
        loss, _ = step(x, y)
        ref_loss, _ = _autograd(ref, x, y, 0.1)
        opt.step()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(model.named_parameters(), ref.parameters(), strict=True):
        moved = (b - initial[name]).abs().max().item()
        assert moved > 1e-3, name  # every parameter really trained
        assert (a - b).abs().max().item() <= 1e-3 * moved, name


def test_same_bits_every_run() -> None:
    """A fixed split and a fixed order of the parts' sums: two steps built alike agree to the
    bit, so a run is reproducible on one machine."""
    x, y = _data(64)
    out = []
    for _ in range(2):
        model, _ = _twins()
        step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1), threads=2)
        out.append(step.gradients(x, y))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    for name, g in out[0][2].items():
        assert torch.equal(g, out[1][2][name]), name


def test_a_non_finite_input_gives_a_non_finite_loss() -> None:
    """The trainer stops a diverging run by its loss: NaN must get through the max-pool and
    the ReLU as it does in torch."""
    model, _ = _twins()
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1))
    x, y = _data(16)
    x[3, 0, 14, 14] = math.nan
    loss, _, _ = step.gradients(x, y)
    assert not torch.isfinite(loss)


def test_refuses_what_it_does_not_compute() -> None:
    torch.manual_seed(0)
    sgd = torch.optim.SGD
    lenet5 = create("lenet5")
    assert supports(lenet5, sgd(lenet5.parameters(), lr=0.1), "cross-entropy")
    assert not supports(lenet5, sgd(lenet5.parameters(), lr=0.1), "rbf-map")
    assert not supports(lenet5, sgd(list(lenet5.parameters())[:-1], lr=0.1), "cross-entropy")
    for name in ("lenet5-tanh", "lenet5-sigmoid", "lenet5-1998", "mlp"):
        other = create(name)
        assert not supports(other, sgd(other.parameters(), lr=0.1), "cross-entropy"), name
    half = create("lenet5").to(torch.bfloat16)
    assert not supports(half, sgd(half.parameters(), lr=0.1), "cross-entropy")
    with pytest.raises(ValueError, match="lenet5"):
        NumbaLeNet5Step(half, sgd(half.parameters(), lr=0.1))


def test_bad_inputs_are_refused_before_the_kernel() -> None:
    model, _ = _twins()
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1))
    x, y = _data(16)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        step.gradients(torch.zeros(16, 1, 32, 32), y)
    y[5] = 10
    with pytest.raises(ValueError, match="label"):
        step.gradients(x, y)


def test_gradients_on_mnist_digits_match_autograd(mnist_ready) -> None:
    """Real digits have blank borders, so max-pool windows tie exactly: the pool must pass the
    gradient where torch's does. 512 digits, channels-last, two parts, as lenet5-fast runs."""
    from lenet import data
    from lenet.models import get_spec

    images, labels = data.load("mnist", "train")
    x = get_spec("lenet5").preprocessing(images[:512]).contiguous(
        memory_format=torch.channels_last)
    y = labels[:512]
    model, ref = _twins(channels_last=True)
    ref = ref.to(memory_format=torch.channels_last)
    step = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1), 0.1, threads=2)
    loss, scores, grads = step.gradients(x, y)
    ref_loss, ref_scores = _autograd(ref, x, y, 0.1)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    _assert_grads_close(grads, ref)


def test_warm_compiles_the_training_steps_own_types_and_changes_nothing() -> None:
    """warm() runs the kernels on blank digits before the first timed epoch: numba then holds
    exactly the specialization a real step calls (a step after it compiles nothing new), and
    the model, its gradients and the step's results are those of a step never warmed."""
    from lenet.training.steps.lenet5_kernels import part_step

    (model, ref), (x, y) = _twins(), _data(64)
    warmed = NumbaLeNet5Step(model, torch.optim.SGD(model.parameters(), lr=0.1), threads=2)
    plain = NumbaLeNet5Step(ref, torch.optim.SGD(ref.parameters(), lr=0.1), threads=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert warmed.warm() >= 0.0 and warmed.compile_seconds is not None
    assert all(p.grad is None for p in model.parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert warmed.warm() == 0.0  # once per step
    signatures = list(part_step.signatures)
    assert len(signatures) == 1
    out_a, out_b = warmed(x, y), plain(x, y)
    assert list(part_step.signatures) == signatures
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
