"""The baseline (the tutorials' pipeline) is theirs, not lenet's: their model, their
per-sample transforms."""

from __future__ import annotations


def test_baseline_model_is_the_tutorials_code_not_ours() -> None:
    """The baseline must not inherit lenet5's training-time tuning: its own module, conv ->
    ReLU -> pool, with lenet5's exact parameter shapes."""
    import torch

    from lenet.bench import baseline
    from lenet.models import create

    base, ours = baseline.baseline_model(), create("lenet5")
    assert type(base).__module__ == "lenet.bench.baseline"
    assert [p.shape for p in base.parameters()] == [p.shape for p in ours.parameters()]
    base.load_state_dict(ours.state_dict())
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(base.eval()(x), ours.eval()(x))


def test_baseline_dataset_gives_torchvisions_normalized_digits() -> None:
    """The baseline's per-sample pipeline (PIL image, ToTensor, Normalize((0.5,), (0.5,)))
    yields exactly (pixel / 255 - 0.5) / 0.5 as a (1, 28, 28) float32 tensor and an int label,
    and a black and a white pixel land on -1 and 1."""
    import torch

    from lenet.bench import baseline

    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = torch.tensor([7, 0, 3])
    ds = baseline.pil_dataset(images, labels)
    assert len(ds) == 3
    for i in range(3):
        x, y = ds[i]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert type(y) is int and y == int(labels[i])
        torch.testing.assert_close(x[0], (images[i].float() / 255 - 0.5) / 0.5)
    x, _ = ds[0]
    assert x[0, 0, 0] == -1.0 and x[0, 0, 1] == 1.0


def test_child_process_entry_is_importable_where_the_bench_points() -> None:
    """`whole_process` runs `python -c "from lenet.bench.baseline import child; child()"`."""
    import inspect

    from lenet.bench import baseline

    assert "from lenet.bench.baseline import child; child()" in inspect.getsource(
        baseline.whole_process)
    assert callable(baseline.child)
