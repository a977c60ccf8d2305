"""``POST /api/read``: read a whole number (the page's number mode), in a worker thread.

The input is what ``/api/predict`` takes (a multipart upload in field ``file``, a raw image/*
body, or JSON pixels, here of any size: ``{"pixels": [H*W numbers 0-255], "width": W,
"height": H}``), with the same limits; options: ``length`` (the number of characters, e.g. 5
for a zip code) and ``pattern`` (``zip``, ``amount`` or a template, see
:func:`lenet.inference.read.decode.decode`), as JSON keys, multipart text fields or query
parameters. The image is made one line's normalized strip (:mod:`lenet.inference.read.line`)
and read by a :class:`~lenet.inference.read.reader.Reader` (the SDNN and its Viterbi decoder).

The answer is :meth:`Reading.to_dict() <lenet.inference.read.reader.Reading.to_dict>` (text,
confidence, rejected, digits with their input columns, per-column probabilities ``columns``
and the Viterbi ``path``) and what the page needs to draw the columns as the paper's Figs.
25-26: ``strip`` (the normalized line: width, height, pixels row-major; ``null`` past
:data:`MAX_STRIP_SHOWN` px), ``centres`` (each column's centre, strip px), ``stride``,
``classes`` and ``reject`` (the threshold under which a reading is rejected).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from lenet.errors import LenetError
from lenet.inference.read.decode import BLANK, PatternError
from lenet.inference.read.decode import automaton as pattern_automaton
from lenet.inference.read.line import pixels_line, to_line
from lenet.inference.read.reader import Reader
from lenet.inference.serve.inputs import input_errors, json_doc
from lenet.inference.serve.limits import ApiError
from lenet.models.sdnn import CLASSES

MAX_LENGTH = 64  # characters a `length` may ask for
MAX_PATTERN = 64  # characters of a `pattern`
MAX_STRIP_SHOWN = 4096  # strip px sent back for drawing; a longer strip is read, not drawn
# A length or pattern makes decoding Viterbi over (pattern state x CTC state), whose cost is
# (states)^2 per column in time and once in memory: bounded here, before anything is built.
MAX_STATES = 1024
MAX_WORK = 300_000_000  # columns x states^2
READ_DOC = (
    "A multipart upload (field `file`), a raw image/* body, or JSON `{\"pixels\": [H*W "
    "numbers 0-255], \"width\": W, \"height\": H}` (row-major; any polarity: a 28-high strip "
    "of white ink on black is read as it is). Options, as JSON keys, multipart text fields or "
    "query parameters: `length` (the number of characters, 0-64) and `pattern` (`zip`: five "
    "digits, `amount`: digits, a point, two digits, or a template: `d` any digit, a digit or "
    "`.`, each optionally followed by `{m}`, `{m,n}`, `+`, `*` or `?`). The same limits as "
    "/api/predict. Answers `text` (\"\" for a blank image), `confidence`, `rejected` "
    "(confidence under `reject`, the reader's threshold for 1 % string errors), `method`, "
    "`digits` (each character, its ink columns x0..x1 in the input's pixels, its "
    "probability), `columns` (each output column's 12 class probabilities: the digits, '.', "
    "none), `path` (the Viterbi path: one class per column), and for drawing them: `strip` "
    "(the normalized line the reader saw: width, height, pixels), `centres` (each column's "
    "centre in strip pixels), `stride`, `classes` and `reject`.")


class LazyReader:
    """The server's reader, loaded on the first ``/api/read`` (a digit-only client never
    pays for it), once, whichever worker thread asks first."""

    def __init__(self, weights: Any) -> None:
        self._source, self._reader = weights, weights if isinstance(weights, Reader) else None
        self._lock = threading.Lock()

    def get(self) -> Reader:
        with self._lock:
            if self._reader is None:
                try:
                    self._reader = Reader() if self._source is None else Reader(self._source)
                except LenetError as e:  # no reader weights installed, or damaged ones
                    raise ApiError(503, f"this server cannot read numbers: {e}") from None
            return self._reader


def _options(fields: dict[str, Any]) -> tuple[int | None, str | None]:
    """`length` and `pattern`, checked; each may come as a string (a form field, a query)."""
    length, pattern = fields.get("length"), fields.get("pattern")
    if isinstance(length, str):  # a form field or a query: at most 3 decimal digits
        text = length.strip()
        length = int(text) if text.isdecimal() and len(text) <= 3 else length or None
    if length in (None, ""):
        length = None
    elif isinstance(length, bool) or not isinstance(length, int) \
            or not 0 <= length <= MAX_LENGTH:
        raise ApiError(422, f'"length" must be a whole number 0..{MAX_LENGTH} (the number of '
                            "characters to read)")
    if pattern in (None, ""):
        pattern = None
    elif not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise ApiError(422, f'"pattern" must be a string of at most {MAX_PATTERN} characters: '
                            '"zip", "amount" or a template such as "d{5}"')
    return length, pattern


def _json_pixels(doc: Any) -> np.ndarray:
    """A JSON request's image: uint8 (H, W) from ``pixels``, ``width`` and ``height``."""
    if not isinstance(doc, dict) or "pixels" not in doc:
        raise ApiError(422, 'expected a JSON object {"pixels": [H*W numbers 0-255], '
                            '"width": W, "height": H}')
    pixels, size = doc["pixels"], (doc.get("width"), doc.get("height"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ApiError(422, '"width" and "height" must be whole numbers >= 1')
    w, h = int(size[0] or 0), int(size[1] or 0)
    if not isinstance(pixels, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pixels):
        raise ApiError(422, '"pixels" must be a flat list of numbers 0-255')
    if len(pixels) != w * h:
        raise ApiError(422, f'"pixels" must hold width x height = {w * h} numbers (row-major), '
                            f"got {len(pixels)}")
    # Python comparisons first: NaN, Infinity and huge integers never reach numpy.
    if not all(0 <= v <= 255 for v in pixels):
        raise ApiError(422, '"pixels": values must be numbers in 0..255 (no NaN or Infinity)')
    return np.rint(np.asarray(pixels, np.float64)).astype(np.uint8).reshape(h, w)


def _check_decoding(options: tuple[int | None, str | None], columns: int) -> None:
    """Refuse (422) a pattern the decoder does not read, and a length or pattern whose
    Viterbi would cost more than :data:`MAX_STATES` states or :data:`MAX_WORK` steps."""
    length, pattern = options
    if length is None and pattern is None:
        return  # the best path: one argmax per column
    try:
        automaton = pattern_automaton(pattern)  # the pattern's own states (cheap, cached)
    except PatternError as e:
        raise ApiError(422, str(e)) from None
    # (automaton state, characters so far) nodes, each with a blank state and at most one
    # state per class entering it.
    states = len(automaton.edges) * (1 if length is None else length + 1) * (BLANK + 1)
    if states > MAX_STATES or columns * states * states > MAX_WORK:
        raise ApiError(422, f"length {length} and pattern {pattern!r} together ask too much of "
                            "the decoder for this image; give a simpler pattern, or no length")


def read_number(reader: Reader, kind: str, payload: bytes, fields: dict[str, Any]
                ) -> dict[str, Any]:
    """Read the request's number (in a worker thread); every problem with the input or the
    options is a 4xx :class:`~lenet.inference.serve.limits.ApiError`. Cheap checks first,
    decoding last."""
    if kind == "json":
        doc = json_doc(payload)
        options = _options({**fields, **(doc if isinstance(doc, dict) else {})})
        image = _json_pixels(doc)
        with input_errors():
            line = pixels_line(image[..., None], "pixels")
    else:
        options = _options(fields)
        with input_errors():
            line = to_line(payload, "upload")
    model = reader.model
    _check_decoding(options, model.columns(line.width) if model is not None else 0)
    reading = reader.read_lines([line], length=options[0], pattern=options[1])[0]
    columns = 0 if reading.columns is None else len(reading.columns)
    shown = line.width <= MAX_STRIP_SHOWN
    return {**reading.to_dict(),
            "strip": {"width": line.width, "height": int(line.strip.shape[0]),
                      "pixels": line.strip.reshape(-1).tolist()} if shown else None,
            "centres": [model.centre(t) for t in range(columns)] if model is not None else [],
            "stride": model.stride if model is not None else None,
            "classes": list(CLASSES),
            "reject": None if reader.reject is None or math.isnan(reader.reject)
            else float(reader.reject)}
