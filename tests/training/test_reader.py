"""Training the SDNN reader: a tiny, seeded run end to end (flanked windows, CTC, the reject
threshold, the published file), and the pieces it rests on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.inference.read.decode import decode
from lenet.models import readers
from lenet.models.sdnn import SDNN
from lenet.training import reader

TINY = dict(windows=256, steps=12, batch=8, check=40, reject_strings=200, train_digits=2000,
            max_length=4, p_distort=0.5)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> Path:
    out = tmp_path_factory.mktemp("reader")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert reader.main(["--out", str(out), "--name", "tiny", *args]) == 0
    return out


@pytest.mark.slow
def test_a_tiny_run_publishes_reader_weights_with_their_threshold(published: Path) -> None:
    entry = json.loads((published / readers.MANIFEST).read_text())["tiny"]
    path = published / entry["file"]
    assert entry["bytes"] == path.stat().st_size <= 300_000
    assert entry["command"].startswith("OMP_NUM_THREADS=1 python -m lenet.training.reader")
    model, meta = readers.load_reader(path)
    assert isinstance(model, SDNN) and not model.training
    assert meta.model == "sdnn" and meta.classes[-1] == "none" and len(meta.classes) == 12
    assert meta.extra["reject"] == entry["reject"] and 0 <= meta.extra["reject"] <= 1
    held = meta.extra["held_out"]
    assert {"held_out_5-paper", "held_out_5-touching", "held_out_10-paper"} <= set(held)
    assert held["held_out_5-paper_errors"] <= 0.01 or meta.extra["reject"] == 1.0


@pytest.mark.slow
def test_the_run_is_seeded(published: Path) -> None:
    first, _ = readers.load_reader(published / "tiny.safetensors")
    again, _, _ = reader.train_reader(reader.ReaderConfig(**TINY), log=lambda _: None)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.slow
def test_read_strips_gives_decodes_text_and_confidence(published: Path,
                                                       mnist_test: tuple) -> None:
    from lenet.data import strings

    model, _ = readers.load_reader(published / "tiny.safetensors")
    s = strings.sample_strings(*mnist_test, 6, (1, 5), "paper", np.random.default_rng(3))
    texts, conf = reader.read_strips(model, s.images)
    for strip, text, c in zip(s.images, texts, conf, strict=True):
        x = torch.from_numpy(strip)[None, None].float() / 127.5 - 1
        with torch.no_grad():
            lp = torch.log_softmax(model(x)[0], -1).double().numpy()
        d = decode(lp)
        assert d.text == text and d.confidence == pytest.approx(c, rel=1e-5, abs=1e-9)


def test_choose_reject_keeps_errors_at_the_target_share_of_those_read() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(1000)
    right = rng.random(1000) < 0.5 + conf / 2  # surer strings are right more often
    t = reader.choose_reject(conf, right, 0.01, z=0)
    read = conf >= t
    assert (read & ~right).sum() <= 0.01 * read.sum() and read.mean() > 0.05
    # No lower threshold keeps to the target.
    for lower in np.sort(conf[conf < t]):
        more = conf >= lower
        assert (more & ~right).sum() > 0.01 * more.sum()
    assert reader.choose_reject(np.array([0.9]), np.array([False]), 0.01, z=0) == 1.0
    assert reader.choose_reject(np.array([0.9, 0.8]), np.array([True, True]), z=0) == 0.4
    # Ties are read or rejected together.
    assert reader.choose_reject(np.array([0.9, 0.5, 0.5]), np.array([True, True, False]),
                                0.3, z=0) == 0.7


def test_by_default_the_threshold_keeps_the_error_rates_upper_bound_to_the_target() -> None:
    # 20,000 strings, 2 % wrong at random below confidence 0.5 and 0.5 % above: the rate seen
    # allows the threshold lower than the bound does, which must leave a margin under 1 %.
    rng = np.random.default_rng(1)
    conf = rng.random(20_000)
    right = rng.random(20_000) >= np.where(conf < 0.5, 0.02, 0.005)
    seen, bound = reader.choose_reject(conf, right, 0.01, z=0), reader.choose_reject(conf, right)
    assert bound > seen
    read = conf >= bound
    errors = (read & ~right).sum() / read.sum()
    assert errors < 0.0095 and read.mean() > 0.3
    # Two right strings bound nothing to 1 %: everything is rejected.
    assert reader.choose_reject(np.array([0.9, 0.8]), np.array([True, True])) == 1.0


def test_the_init_must_be_lenet5_digit_weights() -> None:
    from lenet.errors import ConfigError

    with pytest.raises(ConfigError, match="reader init 'lenet5-tanh': expected bundled 'lenet5'"):
        reader.train_reader(reader.ReaderConfig(init="lenet5-tanh"))


def test_the_init_may_be_a_run_or_weights_file(tmp_path: Path) -> None:
    from lenet.models import create, weights

    digits = create("lenet5")
    path = tmp_path / "digits.safetensors"
    weights.save(path, digits, weights.read("lenet5")[1])
    model, _ = reader.init_digits(str(path))
    for key, value in digits.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(Exception, match="no-such"):
        reader.init_digits(str(tmp_path / "no-such.safetensors"))


@pytest.mark.slow
def test_trained_readers_join_into_one_ensemble(published: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    other = readers.publish(SDNN(), readers.reader_meta(0.5, {"margin": 12}), "other", tmp_path)
    out = tmp_path / "joined"
    assert reader.main(["--out", str(out), "--name", "pair", "--check", "40",
                        "--reject-strings", "200", "--join",
                        str(published / "tiny.safetensors"), str(other)]) == 0
    entry = json.loads((out / readers.MANIFEST).read_text())["pair"]
    model, meta = readers.load_reader(out / entry["file"])
    assert model.members == 2 and meta.extra["members"] == 2
    assert entry["command"].endswith(f"--join {published / 'tiny.safetensors'} {other}")
    assert entry["bytes"] < 1.2 * (published / "tiny.safetensors").stat().st_size  # float16
    assert 0 <= meta.extra["reject"] <= 1 and "held_out_10-paper" in meta.extra["held_out"]
    with pytest.raises(Exception, match="at least two"):
        reader.main(["--join", str(other)])
