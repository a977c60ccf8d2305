"""The compiled lenet5-1998 step against the torch reference step and autograd."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("numba", reason="numba is not installed: the compiled step is optional")

from lenet.models import create
from lenet.models.lenet1998 import LeNet1998
from lenet.training.optim import SDLM
from lenet.training.steps.pattern import PatternStep
from lenet.training.steps.pattern_numba import NumbaPatternStep, same_constants, supports
from tests.training.steps.helpers import assert_matches_autograd, model_and_data


def _twin(model: LeNet1998) -> LeNet1998:
    twin = create("lenet5-1998")
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
@pytest.mark.parametrize("batch", [1, 3])
def test_gradients_match_autograd(loss: str, batch: int) -> None:
    model, x, y = model_and_data()
    step = NumbaPatternStep(model, SDLM(model.parameters(), lr=1e-4), loss, rbf_j=0.5)
    assert_matches_autograd(step, model, x[:batch], y[:batch], loss)


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
def test_steps_match_the_torch_step_across_passes(loss: str) -> None:
    """Two short passes, SDLM's curvature re-estimated before each and the rate changed between
    them as the paper's schedule does: the compiled step returns the reference's losses and
    scores and ends at its weights (up to the float rounding each per-pattern step amplifies;
    on these noise inputs a few dozen steps at a larger rate reach a chaotic regime where even
    the reference and autograd part ways, so the passes are short)."""
    model, x, y = model_and_data(seed=1)
    twin = _twin(model)
    opt_a, opt_b = SDLM(model.parameters(), lr=5e-4), SDLM(twin.parameters(), lr=5e-4)
    fast, ref = NumbaPatternStep(model, opt_a, loss), PatternStep(twin, opt_b, loss)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    for epoch, lr in enumerate((1e-4, 5e-5)):
        for m, opt in ((model, opt_a), (twin, opt_b)):
            opt.param_groups[0]["lr"] = lr
            opt.before_epoch(m, (x[:20], y[:20]), loss)
        for i in range(epoch * 10, epoch * 10 + 10):
            loss_a, scores_a = fast(x[i:i + 1], y[i:i + 1])
            loss_b, scores_b = ref(x[i:i + 1], y[i:i + 1])
            torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(scores_a, scores_b, rtol=1e-5, atol=1e-4)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        moved = (b - initial[name]).abs().max().item()
        assert moved > 1e-4, name  # every parameter really trained
        assert (a - b).abs().max().item() <= 1e-4 * moved, name


@pytest.mark.parametrize("loss", ["rbf-map", "rbf-mle"])
def test_a_sequence_is_the_steps_one_by_one(loss: str) -> None:
    """sequence(x, y) (the trainer's chunk of per-pattern updates) computes exactly what one
    call per pattern does: the same losses, scores and weights, bit for bit."""
    model, x, y = model_and_data(seed=2)
    twin = _twin(model)
    opt_a, opt_b = SDLM(model.parameters(), lr=1e-4), SDLM(twin.parameters(), lr=1e-4)
    for m, opt in ((model, opt_a), (twin, opt_b)):
        opt.before_epoch(m, (x[:20], y[:20]), loss)
    chunked, single = NumbaPatternStep(model, opt_a, loss), NumbaPatternStep(twin, opt_b, loss)
    losses, scores = chunked.sequence(x[:12], y[:12])
    assert losses.shape == (12,) and scores.shape == (12, 10)
    for i in range(12):
        loss_i, scores_i = single(x[i:i + 1], y[i:i + 1])
        assert torch.equal(losses[i], loss_i) and torch.equal(scores[i:i + 1], scores_i), i
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_a_batch_step_matches_the_torch_step() -> None:
    """Batches of more than one pattern take the unfused update path: the same weights."""
    model, x, y = model_and_data(seed=2, n=12)
    twin = _twin(model)
    opt_a, opt_b = SDLM(model.parameters(), lr=1e-4), SDLM(twin.parameters(), lr=1e-4)
    for m, opt in ((model, opt_a), (twin, opt_b)):
        opt.before_epoch(m, (x, y), "rbf-map")
    fast, ref = NumbaPatternStep(model, opt_a, "rbf-map"), PatternStep(twin, opt_b, "rbf-map")
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    for i in range(0, 12, 3):
        torch.testing.assert_close(fast(x[i:i + 3], y[i:i + 3])[0], ref(x[i:i + 3], y[i:i + 3])[0],
                                   rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        moved = (b - initial[name]).abs().max().item()
        assert moved > 0, name
        assert (a - b).abs().max().item() <= 1e-4 * moved, name


def test_updates_the_model_tensors_in_place() -> None:
    model, x, y = model_and_data(n=4)
    opt = SDLM(model.parameters(), lr=5e-4)
    opt.before_epoch(model, (x, y), "rbf-map")
    params = dict(model.named_parameters())
    ptrs = {n: p.data_ptr() for n, p in params.items()}
    before = {n: p.detach().clone() for n, p in params.items()}
    step = NumbaPatternStep(model, opt, "rbf-map")
    loss, scores = step(x[:1], y[:1])
    assert loss.shape == () and scores.shape == (1, 10)
    for name, p in model.named_parameters():
        assert p is params[name] and p.data_ptr() == ptrs[name], name
        assert p.grad is None, name
        assert not torch.equal(p.detach(), before[name]), name  # state_dict sees the update
    # Fresh result tensors every call (the trainer keeps them until it settles its sums).
    loss2, scores2 = step(x[1:2], y[1:2])
    assert loss2.data_ptr() != loss.data_ptr() and scores2.data_ptr() != scores.data_ptr()


def test_follows_a_parameter_whose_storage_was_replaced() -> None:
    model, x, y = model_and_data(n=4)
    opt = SDLM(model.parameters(), lr=5e-4)
    opt.before_epoch(model, (x, y), "rbf-map")
    step = NumbaPatternStep(model, opt, "rbf-map")
    twin = _twin(model)
    ref = PatternStep(twin, SDLM(twin.parameters(), lr=5e-4), "rbf-map")
    ref.optimizer.before_epoch(twin, (x, y), "rbf-map")
    with torch.no_grad():
        model.f6.weight.data = model.f6.weight.detach().clone()
    step(x[:1], y[:1])
    ref(x[:1], y[:1])
    torch.testing.assert_close(model.f6.weight, twin.f6.weight, rtol=0, atol=1e-7)


def test_deterministic() -> None:
    finals = []
    for _ in range(2):
        model, x, y = model_and_data(seed=3, n=10)
        opt = SDLM(model.parameters(), lr=5e-4)
        opt.before_epoch(model, (x, y), "rbf-map")
        step = NumbaPatternStep(model, opt, "rbf-map")
        losses = [step(x[i:i + 1], y[i:i + 1])[0] for i in range(10)]
        finals.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()]))
    assert torch.equal(finals[0][0], finals[1][0])
    for a, b in zip(finals[0][1], finals[1][1], strict=True):
        assert torch.equal(a, b)


def test_a_non_finite_weight_shows_as_a_non_finite_loss() -> None:
    """The trainer stops a diverging run by its loss: the compiled tanh must not hide a NaN."""
    model, x, y = model_and_data(n=4)
    opt = SDLM(model.parameters(), lr=5e-4)
    opt.before_epoch(model, (x, y), "rbf-map")
    with torch.no_grad():
        model.c1.weight[0, 0, 0, 0] = float("nan")
    loss, _ = NumbaPatternStep(model, opt, "rbf-map")(x[:1], y[:1])
    assert not torch.isfinite(loss)


def test_its_copies_of_the_network_constants_are_current() -> None:
    """The compiled (and cached) kernels hold their own copy of Table I and f's constants."""
    assert same_constants()


def test_refuses_a_label_outside_the_ten_digits() -> None:
    model, x, _ = model_and_data(n=1)
    opt = SDLM(model.parameters(), lr=5e-4)
    opt.before_epoch(model, (x, torch.tensor([3])), "rbf-map")
    before = model.c1.weight.detach().clone()
    with pytest.raises(ValueError, match="a label outside"):
        NumbaPatternStep(model, opt, "rbf-map")(x, torch.tensor([10]))
    assert torch.equal(model.c1.weight, before)


def test_supports_only_what_it_computes() -> None:
    model = create("lenet5-1998")
    sdlm = SDLM(model.parameters(), lr=1e-4)
    assert supports(model, sdlm, "rbf-map") and supports(model, sdlm, "rbf-mle")
    assert not supports(model, sdlm, "cross-entropy")
    assert not supports(model, torch.optim.SGD(model.parameters(), lr=0.1), "rbf-map")
    partial = SDLM([p for n, p in model.named_parameters() if n != "f6.bias"], lr=1e-4)
    assert not supports(model, partial, "rbf-map")
    other = create("lenet5")
    assert not supports(other, SDLM(other.parameters(), lr=1e-4), "cross-entropy")
    with pytest.raises(ValueError, match="NumbaPatternStep needs"):
        NumbaPatternStep(model, sdlm, "cross-entropy")


@pytest.mark.parametrize("chunk", [False, True])
def test_warm_compiles_the_kernel_a_run_calls_and_changes_nothing(chunk: bool) -> None:
    """warm() compiles (or loads) the kernel the run will call with the very argument types of
    a real call, on copies: the model, SDLM's state and the step's own buffers are untouched,
    and the following steps match a step never warmed, bit for bit."""
    from lenet.training.steps.pattern_kernels import sequence, step

    model, x, y = model_and_data(seed=2)
    twin = _twin(model)
    opt_a, opt_b = SDLM(model.parameters(), lr=5e-4), SDLM(twin.parameters(), lr=5e-4)
    for m, opt in ((model, opt_a), (twin, opt_b)):
        opt.before_epoch(m, (x[:20], y[:20]), "rbf-map")
    warmed, plain = NumbaPatternStep(model, opt_a, "rbf-map"), NumbaPatternStep(twin, opt_b,
                                                                                 "rbf-map")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert warmed.warm(chunk=chunk) >= 0.0
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    kernel = sequence if chunk else step
    signatures = list(kernel.signatures)
    assert len(signatures) == 1
    call_a = warmed.sequence if chunk else warmed
    call_b = plain.sequence if chunk else plain
    for i in range(3):
        (la, sa), (lb, sb) = call_a(x[i:i + 1], y[i:i + 1]), call_b(x[i:i + 1], y[i:i + 1])
        assert torch.equal(la, lb) and torch.equal(sa, sb)
    assert list(kernel.signatures) == signatures
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
