"""The SDNN's Viterbi decoder on hand-built columns: repeats, blanks, equal digits, length and
pattern constraints, and the confidence (a forward-algorithm posterior)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lenet.inference.read.decode import BLANK, PatternError, decode, decode_batch

_ = BLANK
POINT = 10


def columns(path: list[int], sure: float = 0.97, second: dict[int, int] | None = None,
            share: float = 0.0) -> np.ndarray:
    """(T, 12) log-probabilities: each column `sure` on its class of `path`; where `second`
    names another class for column t, that class gets `share` of the probability instead."""
    p = np.full((len(path), 12), (1 - sure) / 11)
    for t, c in enumerate(path):
        p[t, c] = sure
        if second and t in second:
            p[t, second[t]] += share
            p[t, c] -= share
    return np.log(p)


def brute_force(lp: np.ndarray) -> dict[str, float]:
    """Every string's probability, summed over all paths (small T only)."""
    out: dict[str, float] = {}
    for path in itertools.product(range(12), repeat=len(lp)):
        text, prev = [], None
        for c in path:
            if c != BLANK and c != prev:
                text.append("0123456789."[c])
            prev = c
        key = "".join(text)
        out[key] = out.get(key, 0.0) + float(np.exp(sum(lp[t, c] for t, c in enumerate(path))))
    return out


def test_repeats_collapse_and_a_blank_separates_equal_digits() -> None:
    d = decode(columns([_, 3, 3, 3, _, 3, _, 4, 4, 7, _]))
    assert d.text == "3347"
    assert d.spans == [(1, 4), (5, 6), (7, 9), (9, 10)]
    assert d.path == [_, 3, 3, 3, _, 3, _, 4, 4, 7, _]
    assert len(d.probabilities) == 4 and all(p == pytest.approx(0.97) for p in d.probabilities)
    # Without the blank, the two runs of 3 are one 3.
    assert decode(columns([3, 3, 3, 3])).text == "3"


def test_an_empty_strip_reads_as_nothing_with_full_confidence() -> None:
    d = decode(columns([_] * 6, sure=0.999))
    assert (d.text, d.spans, d.probabilities) == ("", [], [])
    assert d.confidence > 0.99
    assert decode(np.zeros((0, 12))).text == ""


def test_confidence_is_the_posterior_of_the_string_over_all_paths() -> None:
    lp = columns([1, _, 1, 2], sure=0.6, second={2: 7}, share=0.2)
    every = brute_force(lp)
    d = decode(lp)
    assert sum(every.values()) == pytest.approx(1.0)
    assert d.text == max(every, key=every.__getitem__) == "112"
    assert d.confidence == pytest.approx(every["112"], rel=1e-9)
    # Under a length, the posterior is renormalised over the strings of that length.
    of3 = sum(v for k, v in every.items() if len(k) == 3)
    assert decode(lp, length=3).confidence == pytest.approx(every["112"] / of3, rel=1e-9)


def test_a_close_second_reading_lowers_the_confidence() -> None:
    clear = decode(columns([_, 5, _, 6, _], sure=0.99))
    doubt = decode(columns([_, 5, _, 6, _], sure=0.99, second={3: 0}, share=0.4))
    assert clear.text == doubt.text == "56"
    assert doubt.confidence < 0.7 < 0.9 < clear.confidence


def test_length_forces_the_best_string_of_that_length() -> None:
    # A faint 9 at column 4: unconstrained it loses to "none"; asked for 3 digits it is read.
    lp = columns([2, _, 8, _, _, _], second={4: 9}, share=0.4)
    assert decode(lp).text == "28"
    d = decode(lp, length=3)
    assert d.text == "289" and d.spans[-1] == (4, 5)
    assert decode(lp, length=1).text in {"2", "8"}
    # Two equal digits need a blank between them: 3 columns hold "7_7", 2 cannot.
    sevens = columns([7, 7, 7], sure=0.6, second={1: _}, share=0.2)
    assert decode(sevens, length=2).text == "77"
    assert decode(sevens[:2], length=3).text == ""
    assert decode(sevens[:2], length=3).confidence == 0.0


@pytest.mark.parametrize("pattern,expected", [
    ("zip", "12345"), ("d{5}", "12345"), ("d{2,5}", "12345"), ("d+", "12345"),
    ("1d*", "12345"), ("d{10}", ""), ("d+.dd", "123.45"), ("amount", "123.45"),
    ("9?d{5}", "12345"), ("d*7d*", "12745"),
])
def test_patterns(pattern: str, expected: str) -> None:
    # A weak point between 3 and 4, and a weak 7 under the 3.
    lp = columns([1, _, 2, _, 3, _, 4, _, 5], second={5: POINT, 4: 7}, share=0.45)
    d = decode(lp, pattern=pattern)
    assert d.text == expected
    if expected:
        assert 0 < d.confidence <= 1


def test_unconstrained_reads_the_point_when_it_wins() -> None:
    lp = columns([4, _, 2, POINT, 0, _, 5])
    assert decode(lp).text == "42.05"
    assert decode(lp, pattern="amount").text == "42.05"
    assert decode(lp, pattern="zip").text == "42105" or len(decode(lp, pattern="zip").text) == 5


@pytest.mark.parametrize("bad", ["abc", "d{", "d{3,1}", "x", "d{5000}"])
def test_bad_patterns_are_one_clear_error(bad: str) -> None:
    with pytest.raises(PatternError, match="pattern"):
        decode(columns([1, 2]), pattern=bad)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\(T, 12\)"):
        decode(np.zeros((4, 10)))
    with pytest.raises(ValueError, match="length"):
        decode(columns([1]), length=-1)


def test_constrained_viterbi_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _trial in range(5):
        logits = rng.normal(size=(4, 12)) * 2
        lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        every = brute_force(lp)
        for n in (1, 2):
            best = max((k for k in every if len(k) == n), key=every.__getitem__)
            d = decode(lp, length=n)
            # Viterbi maximises the best path, not the summed posterior; the two agree on the
            # winner here unless the best path's string is a close runner-up by posterior.
            path_score = sum(lp[t, c] for t, c in enumerate(d.path))
            assert len(d.text) == n
            assert every[d.text] >= every[best] * 0.3
            assert path_score == pytest.approx(max(
                sum(lp[t, c] for t, c in enumerate(p))
                for p in itertools.product(range(12), repeat=4)
                if _collapse(p) and len(_collapse(p)) == n))


def _collapse(path: tuple[int, ...]) -> str:
    out, prev = [], None
    for c in path:
        if c != BLANK and c != prev:
            out.append("0123456789."[c])
        prev = c
    return "".join(out)


def test_decode_batch_equals_decode_one_by_one() -> None:
    rng = np.random.default_rng(1)
    items = []
    for t in (1, 2, 5, 9, 30, 0):
        logits = rng.normal(size=(t, 12)) * 3
        logits[:, BLANK] += 2
        items.append(logits - np.log(np.exp(logits).sum(1, keepdims=True)))
    items.append(columns([_, 3, 3, _, 3, 1, 1, _]))
    for kwargs in ({}, {"length": 2}, {"pattern": "d+"}):
        got = decode_batch(items, **kwargs)
        want = [decode(lp, **kwargs) for lp in items]
        for g, w in zip(got, want, strict=True):
            assert (g.text, g.spans, g.path) == (w.text, w.spans, w.path)
            assert g.confidence == pytest.approx(w.confidence, rel=1e-12, abs=1e-300)
            assert g.probabilities == pytest.approx(w.probabilities)
    assert decode_batch([]) == []
