"""``lenet paper --reading``: the paper's three ways of reading a number, side by side, on the
frozen string benchmark (:func:`lenet.data.strings.benchmark`, MNIST *test* digits only).

- ``sdnn``: the Space Displacement Neural Network (Sec. VII), LeNet-5 replicated over the line
  and decoded by Viterbi (the bundled reader weights; the row is left out, with a note, where
  they are missing);
- ``segment``: heuristic over-segmentation + the digit recognizer + Viterbi (Sec. V);
- ``components``: one digit per connected component, the naive baseline.

Every method reads through :class:`lenet.inference.read.reader.Reader`, as `lenet read` does
(line normalization included). Columns: per part, the share of strings read exactly and the
share read at 1 % string error (the paper's cheque-reader measure, Sec. X). The paper gives no
figure on MNIST strings; what it does report is in the table's notes.

>>> report = {"methods": [{"method": "components", "digits": "lenet5", "parts": {"5-paper":
...     {"accuracy": 0.5, "read": 0.1, "strings": 10, "seconds": 1.0}}}], "limit": None,
...     "notes": []}
>>> print(format_markdown(report).splitlines()[2])
| 5-paper | 50.0 % (10.0 %) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lenet import console
from lenet.data.strings import PARTS, benchmark
from lenet.errors import LenetError
from lenet.inference.read.evaluate import evaluate
from lenet.inference.read.reader import METHODS, Reader
from lenet.models import hub
from lenet.storage import atomic, rundir

# What the paper reports about reading strings (none of it on MNIST strings).
PAPER_NOTES = (
    "The paper gives no figure on strings of MNIST digits. Its cheque reader (Sec. X: "
    "over-segmentation + LeNet-5 + global training, 646 business cheques) read 82 % at 1 % "
    "error (17 % rejected); of the SDNN it says it 'so far has not yielded better results than "
    "Heuristic Over-Segmentation' (Sec. VII).",
)
BATCH = 64  # strings a call to a Reader


def digit_weights() -> str:
    """The digit weights the segmenting methods use: the default weights where bundled,
    else the paper's ``lenet5``.

    >>> digit_weights() in hub.list_pretrained()
    True
    """
    bundled = hub.list_pretrained()
    return hub.DEFAULT_WEIGHTS if hub.DEFAULT_WEIGHTS in bundled else "lenet5"


def readers(methods: Sequence[str], digits: str | None = None
            ) -> tuple[dict[str, Callable[[Any], Any]], list[str]]:
    """A :class:`Reader` per method that can be made here, and a note for each that cannot
    (the SDNN without its weights)."""
    out: dict[str, Callable[[Any], Any]] = {}
    notes = []
    for method in methods:
        if method not in METHODS:
            raise LenetError(f"reading method {method!r}: expected one of {', '.join(METHODS)}")
        try:
            out[method] = Reader(method=method, digits=digits or digit_weights())
        except LenetError as e:
            notes.append(f"{method}: not measured ({e})")
    return out, notes


def run(methods: Sequence[str] = METHODS, *, parts: Sequence[str] | None = None,
        limit: int | None = None, digits: str | None = None,
        data_dir: str | os.PathLike[str] | None = None, run_dir: str | Path | None = None,
        log: console.Log | None = None) -> dict[str, Any]:
    """Read every part with every method; return the report and write reading.json and
    reading.md to `run_dir`. `limit`: the first that many strings of each part."""
    say = log or console.log
    if limit is not None and limit < 1:
        raise LenetError(f"the strings per part must be at least 1, got {limit}")
    bench = benchmark(data_dir, parts)
    made, notes = readers(methods, digits)
    rows = []
    for method, reader in made.items():
        say(f"reading: {method} on {len(bench)} parts")
        scores = evaluate(reader, bench, batch=BATCH, limit=limit)
        rows.append({"method": method,
                     "digits": None if method == "sdnn" else digits or digit_weights(),
                     "parts": {k: s.to_dict() for k, s in scores.items()}})
    report: dict[str, Any] = {"parts": list(bench), "limit": limit, "methods": rows,
              "notes": [*notes, *PAPER_NOTES]}
    out = Path(run_dir).absolute() if run_dir else rundir.default("reading").absolute()
    atomic.write_text(out / "reading.json", json.dumps(report, indent=2) + "\n")
    atomic.write_text(out / "reading.md", format_markdown(report))
    report["run_dir"] = str(out)
    return report


def _cell(score: dict[str, Any] | None) -> str:
    if score is None:
        return "–"
    return f"{100 * score['accuracy']:.1f} % ({100 * score['read']:.1f} %)"


def _kept(score: dict[str, Any] | None) -> str:
    if score is None or score.get("kept") is None:
        return "–"
    return f"{100 * score['kept']:.1f} % ({100 * score['kept_errors']:.1f} %)"


def format_markdown(report: dict[str, Any]) -> str:
    """The table: a row per benchmark part, a column per method."""
    methods = report["methods"]
    names = [m["method"] + (f" ({m['digits']})" if m.get("digits") else "") for m in methods]
    parts = [p for p in PARTS if any(p in m["parts"] for m in methods)]
    lines = ["| part | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(methods)]
    lines += [f"| {p} | " + " | ".join(_cell(m["parts"].get(p)) for m in methods) + " |"
              for p in parts]
    count = f"first {report['limit']} strings of each part" if report.get("limit") else \
        "every string of each part"
    text = "\n".join(lines) + (
        f"\n\nEach cell: strings read exactly, and in brackets the share read at 1 % string "
        f"error (the rest rejected, most doubtful first; the threshold is set on the part "
        f"itself, for reporting only). Parts: length-spacing (gaps between the digits' ink "
        f"boxes: wide 2..8 px, paper -1..4, touching -4..0), MNIST test digits; {count}.\n")
    own = [p for p in parts if p.startswith("5-")]
    if own:
        text += ("\nAt each reader's own reject threshold (chosen on *training* strings; none "
                 "for the segmenting readers, which read everything): share read, and in "
                 "brackets the share of those read that are wrong.\n\n"
                 + "| part | " + " | ".join(names) + " |\n|---|" + "---:|" * len(methods)
                 + "\n" + "\n".join(f"| {p} | " + " | ".join(_kept(m["parts"].get(p))
                                                           for m in methods) + " |"
                                     for p in own) + "\n")
    if report.get("notes"):
        text += "\n" + "\n".join(f"- {n}" for n in report["notes"]) + "\n"
    return text
