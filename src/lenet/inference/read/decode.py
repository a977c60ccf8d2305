"""Viterbi decoding of an SDNN's output columns into a string (the paper's Sec. VII: the outputs
composed with a character model, Fig. 26), with an optional known length or pattern.

The character model is CTC's: a character may span several consecutive columns, "none" (the
blank, class :data:`BLANK`) may appear anywhere, and two equal characters in a row need a blank
between them ("11" is ``1 _ 1``, never ``1 1``, which reads as one "1"). A length or a pattern
restricts the strings the path may spell; Viterbi then runs over (pattern state x CTC state).

Confidence is the posterior probability of the decoded string given the columns, summed over
every path that spells it (the forward algorithm, as the paper's Eq. 17 scores the correct
answer), divided, under a length or pattern, by the probability of all strings that fit it. It
is what a reject threshold rests on: a string with a second reading close behind gets a low one.

>>> import numpy as np
>>> p = np.full((5, 12), 1e-4); p[[0, 1, 3], 1] = 1; p[[2, 4], BLANK] = 1   # 1 1 _ 1 _
>>> d = decode(np.log(p / p.sum(1, keepdims=True)))
>>> d.text, d.spans, round(d.confidence, 3)
('11', [(0, 2), (3, 4)], 0.995)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

ALPHABET = "0123456789."
BLANK = len(ALPHABET)
NUM_CLASSES = BLANK + 1
DIGITS = frozenset(range(10))
PATTERNS = {"zip": "d{5}", "amount": "d+.dd"}
MAX_STATES = 4096  # a pattern x length product larger than this is refused (memory, time)
_NEG = -np.inf


class PatternError(ValueError):
    """A pattern that is not a name (``zip``, ``amount``) nor a template the grammar reads."""


@dataclass(frozen=True)
class Decoded:
    """A decoded string: its text, confidence in [0, 1], each character's output columns
    ``[t0, t1)`` and probability, and the Viterbi path (one class per column).

    >>> Decoded("7", 0.98, [(2, 4)], [0.99], [11, 11, 7, 7, 11]).text
    '7'
    """

    text: str
    confidence: float
    spans: list[tuple[int, int]] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    path: list[int] = field(default_factory=list)


def decode(logprobs: np.ndarray, length: int | None = None, pattern: str | None = None
           ) -> Decoded:
    """The best string for ``(T, 12)`` per-column log-probabilities (log-softmax), optionally
    of exactly `length` characters and matching `pattern`: a name (``"zip"``: 5 digits,
    ``"amount"``: digits, a point, two digits) or a template (``d`` any digit, a literal digit
    or ``.``, each optionally followed by ``{m}``, ``{m,n}``, ``+``, ``*`` or ``?``).

    No string fits (too few columns for the length, say): text ``""`` with confidence 0.

    >>> import numpy as np
    >>> p = np.full((4, 12), 0.01); p[:, 7] = 0.89               # 7 7 7 7
    >>> decode(np.log(p)).text, decode(np.log(p), length=2).text, decode(np.log(p), pattern="zip")
    ('7', '77', Decoded(text='', confidence=0.0, spans=[], probabilities=[], path=[]))
    """
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[1] != NUM_CLASSES:
        raise ValueError(f"decode takes (T, {NUM_CLASSES}) log-probabilities, got shape "
                         f"{lp.shape}")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ValueError(f"length must be a whole number >= 0, got {length!r}")
    if lp.shape[0] == 0:
        return Decoded("", 1.0 if length in (None, 0) else 0.0)
    if length is None and pattern is None:
        path = lp.argmax(1)  # unconstrained, the best path is each column's best class
        log_z = 0.0
    else:
        graph = _graph(automaton(pattern), length)
        found = _viterbi(lp, graph)
        if found is None:
            return Decoded("", 0.0)
        path, log_z = found, _forward_graph(lp, graph)
    return _result(lp, np.asarray(path, dtype=np.int64), log_z)


def decode_batch(logprobs: Sequence[np.ndarray], length: int | None = None,
                 pattern: str | None = None) -> list[Decoded]:
    """:func:`decode` of each ``(T_i, 12)`` array, the same results; without a length or
    pattern the forward algorithm runs once over the whole batch (many times faster).

    >>> import numpy as np
    >>> p = np.full((3, 12), 0.01); p[:, 4] = 0.89
    >>> [d.text for d in decode_batch([np.log(p), np.log(p[:1]), np.zeros((0, 12))])]
    ['4', '4', '']
    """
    items = [np.asarray(lp, dtype=np.float64) for lp in logprobs]
    if not items:
        return []
    if length is not None or pattern is not None or any(
            lp.ndim != 2 or lp.shape[1] != NUM_CLASSES or len(lp) == 0 for lp in items):
        return [decode(lp, length, pattern) for lp in items]
    paths = [lp.argmax(1) for lp in items]
    runs = [_runs(lp, path) for lp, path in zip(items, paths, strict=True)]
    log_p = _forward_batch(items, [labels for labels, _, _ in runs])
    return [Decoded("".join(ALPHABET[c] for c in labels), float(np.clip(np.exp(lpp), 0, 1)),
                    spans, probs, path.tolist())
            for (labels, spans, probs), lpp, path in zip(runs, log_p, paths, strict=True)]


def _runs(lp: np.ndarray, path: np.ndarray
          ) -> tuple[list[int], list[tuple[int, int]], list[float]]:
    """The characters `path` spells, each one's columns [t0, t1) and probability (its best
    column's)."""
    # Vectorized: lenet read pays this once per number, and its speed rests on such costs.
    new_run = np.ones(len(path), dtype=bool)
    np.not_equal(path[1:], path[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)  # where each run of one class starts
    ends = np.append(starts[1:], len(path))
    best = np.maximum.reduceat(lp[np.arange(len(path)), path], starts)  # each run's best column
    keep = path[starts] != BLANK
    labels = path[starts][keep].tolist()
    spans = list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))
    return labels, spans, np.exp(best[keep]).tolist()


def _result(lp: np.ndarray, path: np.ndarray, log_z: float) -> Decoded:
    """Text, spans and probabilities read off `path`; confidence from the forward algorithm."""
    labels, spans, probs = _runs(lp, path)
    log_p = _forward_batch([lp], [labels])[0]
    confidence = float(np.clip(np.exp(log_p - log_z), 0.0, 1.0))
    return Decoded("".join(ALPHABET[c] for c in labels), confidence, spans, probs,
                   path.tolist())


def _forward_batch(lps: Sequence[np.ndarray], labels: Sequence[list[int]]) -> np.ndarray:
    """log P(labels_i | columns_i) for each item: CTC's forward algorithm over the 2L+1
    states (blank, c1, blank, c2, ..., blank), all items at once, each stopped at its own T."""
    b, steps = len(lps), max(len(lp) for lp in lps)
    n = 2 * max(len(seq) for seq in labels) + 1
    ext = np.full((b, n), BLANK, dtype=np.int64)
    emit = np.zeros((steps, b, n))
    for i, (lp, seq) in enumerate(zip(lps, labels, strict=True)):
        ext[i, 1:2 * len(seq):2] = seq
        emit[:len(lp), i] = lp[:, ext[i]]
    # State s may also be entered from s-2 when it is a character unlike the one two back.
    skip = np.zeros((b, n), dtype=bool)
    skip[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
    alpha = np.full((b, n), _NEG)
    alpha[:, :2] = emit[0, :, :2]
    prev1, prev2 = np.full((b, n), _NEG), np.full((b, n), _NEG)
    ends = np.array([len(lp) for lp in lps])
    for t in range(1, steps):
        prev1[:, 1:] = alpha[:, :-1]
        prev2[:, 2:] = np.where(skip[:, 2:], alpha[:, :-2], _NEG)
        new = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + emit[t]
        alpha = np.where((t < ends)[:, None], new, alpha)
    last = np.array([2 * len(seq) for seq in labels])
    rows = np.arange(b)
    tail = np.where(last > 0, alpha[rows, np.maximum(last - 1, 0)], _NEG)
    return np.logaddexp(alpha[rows, last], tail)


# --- the pattern automaton -------------------------------------------------------------------

_TOKEN = re.compile(r"(d|[0-9]|\.)(\{(\d+)(,(\d*))?\}|\+|\*|\?)?")


@dataclass(frozen=True)
class Automaton:
    """An automaton without epsilon moves: ``edges[q]`` = ((class, next state), ...)."""

    edges: tuple[tuple[tuple[int, int], ...], ...]
    accept: frozenset[int]


@lru_cache(maxsize=64)
def automaton(pattern: str | None) -> Automaton:
    """The automaton of a pattern (a name in PATTERNS or a template; None: any string), shared
    by the SDNN's Viterbi here, the over-segmenter and the page's decoder.

    >>> len(automaton("zip").accept), sorted(automaton(None).accept)
    (1, [0])
    """
    if pattern is None:
        return Automaton((tuple((c, 0) for c in range(BLANK)),), frozenset({0}))
    if not isinstance(pattern, str):
        raise PatternError(f"pattern must be a string, got {type(pattern).__name__}")
    template = PATTERNS.get(pattern, pattern)
    eps: list[set[int]] = [set()]
    moves: list[list[tuple[frozenset[int], int]]] = [[]]

    def new() -> int:
        eps.append(set())
        moves.append([])
        return len(eps) - 1

    cur, pos = 0, 0
    while pos < len(template):
        m = _TOKEN.match(template, pos)
        if m is None:
            raise PatternError(
                f"pattern {pattern!r}: cannot read {template[pos:]!r}; use a name ("
                f"{', '.join(PATTERNS)}) or a template of d (any digit), digits and '.', each "
                "optionally followed by {m}, {m,n}, +, * or ?")
        pos = m.end()
        chars = DIGITS if m[1] == "d" else frozenset({ALPHABET.index(m[1])})
        low, high = _repeat(m, pattern)
        for _ in range(low):
            nxt = new()
            moves[cur].append((chars, nxt))
            cur = nxt
        if high is None:  # any number more: a fresh state with a loop, entered by epsilon
            loop = new()
            eps[cur].add(loop)
            moves[loop].append((chars, loop))
            cur = loop
        elif high > low:
            end = new()
            for _ in range(high - low):
                eps[cur].add(end)
                nxt = new()
                moves[cur].append((chars, nxt))
                cur = nxt
            eps[cur].add(end)
            cur = end
    if len(eps) > MAX_STATES:
        raise PatternError(f"pattern {pattern!r} is too long (at most {MAX_STATES} states)")
    return _close(eps, moves, cur)


def _repeat(m: re.Match[str], pattern: str) -> tuple[int, int | None]:
    if m[2] is None:
        return 1, 1
    if m[2] in "+*?":
        return {"+": (1, None), "*": (0, None), "?": (0, 1)}[m[2]]
    low = int(m[3])
    high = low if m[4] is None else (int(m[5]) if m[5] else None)
    if high is not None and high < low:
        raise PatternError(f"pattern {pattern!r}: {m[2]} repeats at most fewer times than "
                           "at least")
    if max(low, high or 0) > 1000:
        raise PatternError(f"pattern {pattern!r}: {m[2]} repeats more than 1000 times")
    return low, high


def _close(eps: list[set[int]], moves: list[list[tuple[frozenset[int], int]]], final: int
           ) -> Automaton:
    """Epsilon moves folded into the character moves and the accepting set."""
    closures = []
    for q in range(len(eps)):
        seen, todo = {q}, [q]
        while todo:
            for r in eps[todo.pop()] - seen:
                seen.add(r)
                todo.append(r)
        closures.append(seen)
    edges = tuple(tuple(sorted({(c, nxt) for r in closures[q] for chars, nxt in moves[r]
                                for c in chars})) for q in range(len(eps)))
    accept = frozenset(q for q in range(len(eps)) if final in closures[q])
    return Automaton(edges, accept)


@dataclass(frozen=True)
class _Graph:
    """The CTC x automaton states: each state's class, allowed moves (S, S) as 0/-inf, the
    start scores and the accepting states."""

    label: np.ndarray
    trans: np.ndarray
    start: np.ndarray
    final: np.ndarray


def _nodes(nfa: Automaton, length: int | None
           ) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """The automaton's reachable states, with a character count when the length is fixed:
    (q, k) in order, and the arcs (from, class, to) between their indices."""
    nodes: dict[tuple[int, int], int] = {(0, 0): 0}
    order, arcs = [(0, 0)], []
    for q, k in order:
        if length is not None and k == length:
            continue
        for c, nxt in nfa.edges[q]:
            key = (nxt, k + 1 if length is not None else 0)
            if key not in nodes:
                nodes[key] = len(order)
                order.append(key)
                if len(order) > MAX_STATES:
                    raise PatternError(f"pattern with length {length} has too many states "
                                       f"(at most {MAX_STATES})")
            arcs.append((nodes[(q, k)], c, nodes[key]))
    return order, arcs


@lru_cache(maxsize=64)
def _graph(nfa: Automaton, length: int | None) -> _Graph:
    order, arcs = _nodes(nfa, length)
    # CTC states: (node, blank) and (node, c) for each class c that enters the node.
    states: dict[tuple[int, int], int] = {(n, BLANK): n for n in range(len(order))}
    for _, c, dst in arcs:
        states.setdefault((dst, c), len(states))
    size = len(states)
    trans = np.full((size, size), _NEG)
    label = np.empty(size, dtype=np.int64)
    at_node: dict[int, list[tuple[int, int]]] = {}
    for (n, c), s in states.items():
        label[s] = c
        trans[s, s] = 0.0
        if c != BLANK:
            trans[s, n] = 0.0  # a character, then "none" at the same node
        at_node.setdefault(n, []).append((c, s))
    for src, c, dst in arcs:
        for prev, s in at_node[src]:
            if prev != c:  # a repeat of the same character needs a blank first
                trans[s, states[(dst, c)]] = 0.0
    start = trans[0].copy()  # from (start node, blank), which itself may be the first column
    accepting = [order[n][0] in nfa.accept and (length is None or order[n][1] == length)
                 for n, _ in states]
    return _Graph(label, trans, start, np.asarray(accepting, dtype=bool))


def _viterbi(lp: np.ndarray, g: _Graph) -> np.ndarray | None:
    emit = lp[:, g.label]
    score = g.start + emit[0]
    back = np.empty((len(lp), len(g.label)), dtype=np.int64)
    for t in range(1, len(lp)):
        cand = score[:, None] + g.trans
        back[t] = cand.argmax(0)
        score = cand[back[t], np.arange(len(score))] + emit[t]
    score = np.where(g.final, score, _NEG)
    s = int(score.argmax())
    if not np.isfinite(score[s]):
        return None
    states = [s]
    for t in range(len(lp) - 1, 0, -1):
        s = int(back[t, s])
        states.append(s)
    return g.label[np.asarray(states[::-1])]


def _forward_graph(lp: np.ndarray, g: _Graph) -> float:
    """log of the probability of every path that spells a string the constraint allows."""
    emit = lp[:, g.label]
    alpha = g.start + emit[0]
    for t in range(1, len(lp)):
        alpha = _logsumexp0(alpha[:, None] + g.trans) + emit[t]
    alpha = alpha[g.final]
    return float(_logsumexp0(alpha[:, None])[0]) if alpha.size else _NEG


def _logsumexp0(a: np.ndarray) -> np.ndarray:
    top = a.max(0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - safe).sum(0)) + safe
