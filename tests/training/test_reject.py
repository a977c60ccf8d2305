"""lenet.training.reject: the reject margin, chosen on a run's held-out training digits; and
training with realistic distortions (`realistic: true`), which the bundled default uses."""

from __future__ import annotations

import pytest
import torch

from lenet.analysis.evaluate import margins
from lenet.errors import ConfigError
from lenet.training.reject import choose_margin, held_out_margin


def test_choose_margin_meets_the_target_with_the_fewest_rejections() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (2000,), generator=g)
    scores = torch.randn(2000, 10, generator=g)
    scores[torch.arange(2000), labels] += 3.0  # mostly right, the unsure ones wrong more often
    for target in (2.0, 0.5):
        chosen = choose_margin(scores, labels, target)
        kept = margins(scores) > chosen.margin
        wrong = scores.argmax(1) != labels
        error = 100 * float(wrong[kept].float().mean())
        assert error <= target + 1e-9 and chosen.error == pytest.approx(error)
        assert chosen.rejected == pytest.approx(100 * float((~kept).float().mean()))
        # One digit fewer rejected (the next lower margin) would miss the target.
        lower = margins(scores)[~kept].max()
        assert 100 * float(wrong[margins(scores) >= lower].float().mean()) > target
    assert choose_margin(scores, labels, 0.5).margin > choose_margin(scores, labels, 2.0).margin
    right = torch.eye(10)[labels] * 5
    assert choose_margin(right, labels).margin == 0.0  # nothing to reject: only exact ties


@pytest.mark.slow
def test_a_realistic_run_and_its_held_out_margin_into_published_weights(tmp_path, mnist_ready,
                                                                        monkeypatch) -> None:
    from lenet.analysis import evaluate
    from lenet.config import resolve
    from lenet.data.realistic import Realistic
    from lenet.data.transforms import Preprocessing
    from lenet.inference.predict import Predictor
    from lenet.inference.publish import publish
    from lenet.models import weights
    from lenet.training.batches import load_data
    from lenet.training.loop import fit

    run = tmp_path / "run"
    cfg = resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 1000,
                         "test_subset": 200, "val_size": 1000, "realistic": True, "seed": 0,
                         "lr": 0.002, "scheduler": "none", "run_dir": str(run),
                         "tensorboard": False})
    data = load_data(cfg, Preprocessing(0.5, 0.5), torch.device("cpu"))
    assert isinstance(data.distort, Realistic) and data.train.inputs is None
    x, _ = data.batch(torch.arange(8), torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 28, 28)
    fit(cfg, log=lambda s: None)
    chosen = held_out_margin(run, target_error=2.0)
    assert chosen.digits == 1000 and chosen.error <= 2.0 and chosen.margin >= 0
    with pytest.raises(ConfigError, match="held out no training digits"):
        bare = tmp_path / "bare"
        bare.mkdir()
        (bare / "config.json").write_text((run / "config.json").read_text().replace(
            '"val_size": 1000', '"val_size": 0'))
        held_out_margin(bare)
    # Publishing measures the whole test set; the first 500 digits say as much about what is
    # checked here (the margin's way into the file), in a twentieth of the time.
    whole = evaluate.evaluate_detailed
    monkeypatch.setattr(evaluate, "evaluate_detailed",
                        lambda loaded, test_subset=0: whole(loaded, test_subset=500))
    entry = publish(run, "tiny-real", tmp_path / "pub", recipe="lenet5-real",
                    reject_margin=chosen.margin, log=lambda s: None)
    assert "--reject-from runs/weights/tiny-real-val" in entry["command"]
    _, meta = weights.read(tmp_path / "pub" / "tiny-real.safetensors")
    assert meta.reject_margin == chosen.margin
    assert Predictor.load(tmp_path / "pub" / "tiny-real.safetensors").reject_margin == \
        chosen.margin
    # Without a margin the file is published byte for byte, and never unsure.
    plain = publish(run, "tiny", tmp_path / "pub", log=lambda s: None)
    assert plain["sha256"] != entry["sha256"] and "--reject-from" not in plain["command"]
    assert Predictor.load(tmp_path / "pub" / "tiny.safetensors").reject_margin is None
