"""The segmenting readers: connected components, and over-segmentation + recognizer + Viterbi."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lenet.data import strings as S
from lenet.inference.read import segment as G


@pytest.fixture(scope="module")
def train_digits(mnist_ready: None) -> tuple[np.ndarray, np.ndarray]:
    from lenet.data.datasets import read_split

    images, labels = read_split("mnist", "train")
    return images, labels


@pytest.fixture(scope="module")
def classify():
    from lenet.inference.predict import Predictor

    return G.classifier(Predictor.load("lenet5"))


def test_width_prior_is_mnist_training_digits(train_digits):
    assert G.width_prior(*train_digits) == G.WIDTHS


def _strings(train_digits, n, spacing, seed=3, **kw):
    images, labels = train_digits
    return S.sample_strings(images[-5000:], labels[-5000:], n, 5, spacing,
                            np.random.default_rng(seed), **kw)


def test_both_read_well_spaced_numbers(train_digits, classify):
    s = _strings(train_digits, 30, "wide")
    for read in (G.read_components, G.read_oversegmented):
        results = [read(x, classify) for x in s.images]
        right = [r.text == t for r, t in zip(results, s.texts, strict=True)]
        assert np.mean(right) >= 0.85, read.__name__
        for r, boxes, ok in zip(results, s.boxes, right, strict=True):
            if ok:  # each digit's columns are within its ink's (a stray speck is dropped)
                got = np.array([(d.x0, d.x1) for d in r.digits])
                assert (got[:, 0] >= boxes[:, 0] - 1).all() and (got[:, 1] <= boxes[:, 1] + 1).all()
                assert ((got[:, 1] - got[:, 0]) >= 0.6 * (boxes[:, 1] - boxes[:, 0])).all()
                product = np.prod([d.probability for d in r.digits])
                if read is G.read_components:
                    assert r.confidence == pytest.approx(product)
                else:  # times the sureness of the cut: the margin over the best other text
                    assert 0.0 < r.confidence <= product


def test_oversegmentation_beats_components_when_digits_touch(train_digits, classify):
    s = _strings(train_digits, 40, "paper", seed=4)
    comp = np.mean([G.read_components(x, classify).text == t
                    for x, t in zip(s.images, s.texts, strict=True)])
    seg = np.mean([G.read_oversegmented(x, classify).text == t
                   for x, t in zip(s.images, s.texts, strict=True)])
    assert seg >= comp + 0.15 and seg >= 0.6


def test_decimal_points(train_digits, classify):
    s = _strings(train_digits, 12, "wide", seed=5, p_point=1.0)
    comp = [G.read_components(x, classify).text for x in s.images]
    seg = [G.read_oversegmented(x, classify, pattern="amount").text for x in s.images]
    assert np.mean([c == t for c, t in zip(comp, s.texts, strict=True)]) >= 0.75
    assert np.mean([c == t for c, t in zip(seg, s.texts, strict=True)]) >= 0.75
    assert all(t.count(".") == 1 and len(t.split(".")[1]) == 2 for t in seg)


def test_length_and_pattern_constrain_the_path(train_digits, classify):
    s = _strings(train_digits, 6, "paper", seed=6)
    for x in s.images:
        for n in (3, 5, 6):
            assert len(G.read_oversegmented(x, classify, length=n).text) in (0, n)
        assert len(G.read_oversegmented(x, classify, pattern="zip").text) in (0, 5)
    one = s.images[0]
    r = G.read_oversegmented(one, classify, length=40)  # impossible: nothing, confidence 0
    assert r.text == "" and r.confidence == 0.0


def test_segments_of_a_path_share_out_the_ink(train_digits):
    s = _strings(train_digits, 10, "touching", seed=7)
    for x in s.images:
        blobs = G.ink.find_blobs(x)
        cuts = G._cuts(blobs)
        ink = np.zeros_like(blobs[0].mask)
        for b in blobs:
            ink |= b.mask
        rng = np.random.default_rng(0)
        path = [0]
        while path[-1] < len(cuts) - 1:  # a random path through the graph
            path.append(min(path[-1] + int(rng.integers(1, 3)), len(cuts) - 1))
        masks = [G._segment_mask(blobs, cuts[i], cuts[j]) for i, j in itertools.pairwise(path)]
        total = np.sum(masks, axis=0)
        assert (total <= 1).all() and ((total == 1) == ink).all()


def test_blank_and_bad_input():
    never = lambda d: pytest.fail("no ink: nothing to classify")  # noqa: E731
    noise = np.zeros((28, 50), np.uint8)
    noise[3, 7] = noise[20, 30] = 255  # specks only
    for strip in (np.zeros((28, 50), np.uint8), noise):
        assert G.read_components(strip, never).text == ""
        assert G.read_oversegmented(strip, never).text == ""
    with pytest.raises(ValueError, match="28"):
        G.read_components(np.zeros((20, 50), np.uint8), never)
    with pytest.raises(ValueError, match="length"):
        G.read_oversegmented(noise, never, length=-1)


def test_the_runner_up_reads_another_text_at_a_higher_penalty(train_digits, classify):
    s = _strings(train_digits, 5, "paper", seed=8)
    for x in s.images:
        blobs = G.ink.find_blobs(x)
        cuts = G._cuts(blobs)
        arcs = G._arcs(x, blobs, cuts, classify)
        path, cost = G._viterbi(arcs, len(cuts), None, None, G.Penalties())
        text = "".join(G.ALPHABET[c] for _, c in path if c >= 0)
        other, other_cost = G._viterbi(arcs, len(cuts), None, None, G.Penalties(), avoid=text)
        assert "".join(G.ALPHABET[c] for _, c in other if c >= 0) != text
        assert other_cost >= cost


def test_docstring_examples_run():
    import doctest

    from lenet.inference.read import segment as MOD

    failures, tried = doctest.testmod(MOD, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0
