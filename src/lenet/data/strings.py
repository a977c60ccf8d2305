"""Numbers built from MNIST digits: strips for reading whole strings, as the 1998 paper did.

A string is MNIST digits pasted side by side in a 28-high strip, white ink on black as MNIST
is, each digit at its own rows (MNIST centred it by mass in 28 x 28), the gap between the ink
boxes of neighbouring digits drawn at random (negative gaps overlap; overlapping ink combines
by max, as two strokes on paper would). An amount may hold a decimal point: a small dot on the
baseline between two digits.

- :func:`compose` pastes given digits with given gaps; :func:`sample_strings` draws strings.
- :func:`flanked_windows` makes the paper's SDNN training samples (Sec. VII-B).
- :func:`pad_batch` pads strips of several widths into one batch.
- :func:`benchmark` is the frozen string benchmark, from MNIST *test* digits only (the
  training and test writers are disjoint), each part seeded and its SHA-256 pinned here.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> digits = np.zeros((10, 28, 28), np.uint8); digits[:, 6:22, 10:18] = 255
>>> s = sample_strings(digits, np.arange(10), count=2, length=5, spacing="paper", rng=rng)
>>> s.images[0].shape[0], len(s.texts[0]), s.boxes[0].shape
(28, 5, (5, 2))
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy
import torch

from lenet.data import photo
from lenet.data.datasets import default_data_dir, read_split
from lenet.data.geometry import salt_pepper
from lenet.errors import DatasetError
from lenet.storage import atomic

ALPHABET = "0123456789."  # class k is ALPHABET[k]
BLANK = len(ALPHABET)  # the "none" class (the CTC blank): 12 classes in all
POINT = ALPHABET.index(".")
HEIGHT = 28
# The gap in px between the ink boxes of neighbouring digits, drawn uniformly per gap.
SPACINGS = {"wide": (2, 8), "paper": (-1, 4), "touching": (-4, 0)}
# What counts as ink for a glyph's box: 20 % of full white, as inference.preprocess's
# INK_THRESHOLD (a lower layer cannot import it); MNIST's faint anti-aliased rims are not ink.
INK = 51


@dataclass(frozen=True)
class Strings:
    """What a reader is handed, and the truth.

    images: uint8 (28, W_i) white-on-black strips, or (h, w, 3) photos of them;
    texts: the strings; boxes: (len(text), 2) int64, each character's ink columns x0, x1
    (x1 exclusive) in the 28-high strip's coordinates.

    >>> s = Strings([np.zeros((28, 9), np.uint8)], ["1"], [np.array([[3, 6]])])
    >>> len(s)
    1
    """

    images: list[np.ndarray]
    texts: list[str]
    boxes: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.texts)


# --------------------------------------------------------------------------- composing
def _ink_columns(glyph: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero((glyph >= INK).any(axis=0))
    if cols.size == 0:
        cols = np.flatnonzero(glyph.any(axis=0))
    if cols.size == 0:
        raise ValueError("compose: a glyph holds no ink")
    return int(cols[0]), int(cols[-1]) + 1


def compose(digits: Sequence[np.ndarray], gaps: Sequence[int], margin: int = 4
            ) -> tuple[np.ndarray, np.ndarray]:
    """Paste 28-high glyphs left to right: ``gaps[i]`` px between the ink boxes of glyphs i
    and i+1 (negative: they overlap, ink combined by max), `margin` px of black either side.

    A gap never buries more than half the narrower of the two glyphs (a thin 1 at gap -4
    would otherwise vanish inside its neighbour). Returns the strip, uint8 (28, W), and each
    glyph's ink columns, int64 (n, 2) [x0, x1).

    >>> one = np.zeros((28, 28), np.uint8); one[5:23, 12:15] = 255
    >>> strip, boxes = compose([one, one], [2])
    >>> strip.shape, boxes.tolist()
    ((28, 16), [[4, 7], [9, 12]])
    """
    if len(digits) == 0:
        raise ValueError("compose: no digits")
    if len(gaps) != len(digits) - 1:
        raise ValueError(f"compose: {len(digits)} digits need {len(digits) - 1} gaps, "
                         f"got {len(gaps)}")
    crops, widths = [], []
    for glyph in digits:
        glyph = np.asarray(glyph)
        if glyph.ndim != 2 or glyph.shape[0] != HEIGHT:
            raise ValueError(f"compose: expected {HEIGHT}-high 2-D glyphs, got {glyph.shape}")
        c0, c1 = _ink_columns(glyph)
        # Keep the faint rim outside the ink box too (it is part of the stroke), clipped to
        # the glyph: it is pasted around the box, so overlapping rims combine by max.
        lo, hi = max(c0 - 2, 0), min(c1 + 2, glyph.shape[1])
        crops.append((glyph[:, lo:hi], c0 - lo))
        widths.append(c1 - c0)
    x0s = [margin]
    for i, gap in enumerate(gaps):
        gap = max(int(gap), -(min(widths[i], widths[i + 1]) // 2))
        x0s.append(x0s[-1] + widths[i] + gap)
    boxes = np.array([[x, x + w] for x, w in zip(x0s, widths, strict=True)], dtype=np.int64)
    width = int(boxes[:, 1].max()) + margin
    pad = 2  # room for the rims at the margins, cut off again below
    strip = np.zeros((HEIGHT, width + 2 * pad), dtype=np.uint8)
    for (crop, left), x0 in zip(crops, x0s, strict=True):
        at = x0 - left + pad
        np.maximum(strip[:, at:at + crop.shape[1]], crop, out=strip[:, at:at + crop.shape[1]])
    return strip[:, pad:pad + width].copy(), boxes


def point_glyph(baseline: int, rng: np.random.Generator) -> np.ndarray:
    """A decimal point: a small round dot (radius 1.2-2.2 px) sitting on row `baseline`
    (exclusive bottom of the neighbouring digits' ink), in a 28 x 9 glyph.

    >>> g = point_glyph(23, np.random.default_rng(0))
    >>> g.shape, bool(g[:17].any()), bool(g[19:23].any())
    ((28, 9), False, True)
    """
    r = float(rng.uniform(1.2, 2.2))
    cy, cx = baseline - r, 4.0 + float(rng.uniform(-0.5, 0.5))
    yy, xx = np.mgrid[0:HEIGHT, 0:9]
    dist = np.hypot(yy + 0.5 - cy, xx + 0.5 - cx)
    return np.clip((r + 0.5 - dist) * 255.0, 0, 255).astype(np.uint8)


def _bottom(glyph: np.ndarray) -> int:
    rows = np.flatnonzero((glyph >= INK).any(axis=1))
    return int(rows[-1]) + 1 if rows.size else 24


def _gap_range(spacing: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(spacing, str):
        if spacing not in SPACINGS:
            raise ValueError(f"spacing {spacing!r}: expected one of {', '.join(SPACINGS)} "
                             "or a (low, high) pair of px")
        return SPACINGS[spacing]
    lo, hi = (int(v) for v in spacing)
    if lo > hi:
        raise ValueError(f"spacing {spacing!r}: low must not exceed high")
    return lo, hi


def _one_string(images: np.ndarray, labels: np.ndarray, n: int, gaps: tuple[int, int],
                rng: np.random.Generator, margin: int, point: bool
                ) -> tuple[np.ndarray, str, np.ndarray]:
    picks = rng.integers(0, len(images), size=n)
    glyphs = [images[i] for i in picks]
    text = "".join(str(int(labels[i])) for i in picks)
    drawn = rng.integers(gaps[0], gaps[1] + 1, size=n - 1).tolist()
    if point and n >= 2:
        at = n - 2 if n >= 3 else 1  # before the cents: 1234.56
        base = round((_bottom(glyphs[at - 1]) + _bottom(glyphs[at])) / 2)
        glyphs.insert(at, point_glyph(min(base, HEIGHT - 1), rng))
        text = text[:at] + "." + text[at:]
        # A person leaves the dot room: its gaps are the spacing's, at least 1 px.
        drawn[at - 1:at] = [max(int(g), 1) for g in rng.integers(gaps[0], gaps[1] + 1, size=2)]
    strip, boxes = compose(glyphs, drawn, margin)
    return strip, text, boxes


def sample_strings(images: np.ndarray, labels: np.ndarray, count: int,
                   length: int | tuple[int, int], spacing: str | tuple[int, int],
                   rng: np.random.Generator, margin: int = 4, p_point: float = 0.0) -> Strings:
    """`count` strings of `length` digits (or a length drawn from an inclusive (lo, hi)),
    digits drawn at random from `images`/`labels`, gaps from `spacing` (a name in
    :data:`SPACINGS` or a (lo, hi) pair). With probability `p_point` a string is an amount:
    a decimal point on the baseline before the last two digits ("123.45"; "1.2" if 2 long).

    >>> d = np.zeros((10, 28, 28), np.uint8); d[:, 6:22, 10:18] = 255
    >>> s = sample_strings(d, np.arange(10), 3, (3, 4), "wide", np.random.default_rng(1),
    ...                    p_point=1.0)
    >>> all("." in t for t in s.texts)
    True
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1] != HEIGHT or len(images) != len(labels):
        raise ValueError(f"sample_strings: expected images (N, {HEIGHT}, w) and N labels, got "
                         f"{images.shape} and {labels.shape}")
    lo, hi = (length, length) if isinstance(length, int) else (int(length[0]), int(length[1]))
    if lo < 1 or lo > hi:
        raise ValueError(f"sample_strings: length {length!r} must be >= 1 (lo <= hi)")
    gaps = _gap_range(spacing)
    strips, texts, boxes = [], [], []
    for _ in range(count):
        n = int(rng.integers(lo, hi + 1))
        point = bool(p_point > 0 and rng.random() < p_point)
        strip, text, box = _one_string(images, labels, n, gaps, rng, margin, point)
        strips.append(strip)
        texts.append(text)
        boxes.append(box)
    return Strings(strips, texts, boxes)


def flanked_windows(images: np.ndarray, labels: np.ndarray, count: int,
                    rng: np.random.Generator, width: int = 32, *,
                    gaps: tuple[int, int] = SPACINGS["paper"], p_blank: float = 0.2,
                    p_edge: float = 0.1, noise: float = 0.1, jitter: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The paper's SDNN training samples (Sec. VII-B): a `width`-wide window centred on a
    digit flanked by two random digits (gaps drawn in `gaps`), target the centre digit; with
    probability `p_blank` no digit is centred (the window sits midway in the gap between two
    digits, or past the last one), target :data:`BLANK`. With probability `p_edge` one
    neighbour is left out (a string's first or last digit). `noise`: that fraction of
    pixels salt-and-pepper (the paper's 10 %). `jitter`: the centre moved up to that many px.

    >>> d = np.zeros((10, 28, 28), np.uint8); d[:, 6:22, 10:18] = 255
    >>> x, y = flanked_windows(d, np.arange(10), 8, np.random.default_rng(0))
    >>> x.shape, x.dtype, y.dtype
    ((8, 28, 32), dtype('uint8'), dtype('int64'))
    """
    images, labels = np.asarray(images), np.asarray(labels)
    out = np.zeros((count, HEIGHT, width), dtype=np.uint8)
    target = np.empty(count, dtype=np.int64)
    for k in range(count):
        picks = rng.integers(0, len(images), size=3)
        glyphs = [images[i] for i in picks]
        drawn = rng.integers(gaps[0], gaps[1] + 1, size=2).tolist()
        blank = rng.random() < p_blank
        if blank:
            if rng.random() < 0.25:  # past the end of a string: one digit, then nothing
                strip, boxes = compose(glyphs[:1], [], margin=width)
                away = float(rng.uniform(6, width / 2))
                centre = boxes[0, 1] + away if rng.random() < 0.5 else boxes[0, 0] - away
            else:
                strip, boxes = compose(glyphs[:2], drawn[:1], margin=width)
                centre = (boxes[0, 1] + boxes[1, 0]) / 2
            target[k] = BLANK
        else:
            edge = rng.random() < p_edge
            keep = [0, 1] if edge and rng.random() < 0.5 else [1, 2] if edge else [0, 1, 2]
            strip, boxes = compose([glyphs[i] for i in keep],
                                   [drawn[i] for i in keep[:-1]], margin=width)
            box = boxes[keep.index(1)]
            centre = (box[0] + box[1]) / 2
            target[k] = int(labels[picks[1]])
        if jitter:
            centre += int(rng.integers(-jitter, jitter + 1))
        left = round(centre - width / 2)
        out[k] = strip[:, left:left + width]
    if noise:
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        out = salt_pepper(torch.from_numpy(out), noise, gen).to(torch.uint8).numpy()
    return out, target


def pad_batch(strips: Sequence[np.ndarray], multiple: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Strips of several widths -> uint8 (B, 28, Wmax rounded up to `multiple`), zero-padded
    on the right, and their widths int64 (B,).

    >>> x, w = pad_batch([np.ones((28, 5), np.uint8), np.ones((28, 9), np.uint8)])
    >>> x.shape, w.tolist()
    ((2, 28, 12), [5, 9])
    """
    if len(strips) == 0:
        raise ValueError("pad_batch: no strips")
    widths = np.array([s.shape[1] for s in strips], dtype=np.int64)
    wmax = -(-int(widths.max()) // multiple) * multiple
    batch = np.zeros((len(strips), strips[0].shape[0], wmax), dtype=np.uint8)
    for i, s in enumerate(strips):
        batch[i, :, :s.shape[1]] = s
    return batch, widths


# --------------------------------------------------------------------------- the benchmark
LENGTHS = (5, 9, 10)
PARTS = (*(f"{n}-{s}" for n in LENGTHS for s in SPACINGS), "5-paper-noise", "5-paper-photo")
COUNT = 1000  # strings a part
PHOTO_COUNT = 200  # photos are ~16x the bytes of a strip (4x larger, RGB): fewer, cached
NOISE = 0.1  # the noise part's salt-and-pepper fraction, as the paper's Sec. VII-B
# The SHA-256 of each part as built (see _digest); a mismatch means the builder, numpy's
# random streams or the MNIST test file changed, and the numbers would not be comparable.
PINS: dict[str, str] = {
    "5-wide": "5528d03c1b276ca07b89200c6e28a0bea762ede153f2b801b86504cfcb84000e",
    "5-paper": "6ebb9695968aab37b4e1dd27a0f768da976dccee49b40a96a5ab7ed0f025af33",
    "5-touching": "272147f42e80843eca3c04a7e17d61d9ac284a5a7d38d2251ab8989f995131e5",
    "9-wide": "bd53a5875082b16c146f0d61e0602847225e509015df81ba4a5e97f5b27e5280",
    "9-paper": "2eec93a2b2b83885b1c96c86529c93d48669f604cb2999a4ee357a2091334c5f",
    "9-touching": "bf8df9cee80585c66d8da45be66afc34b1c9c685b4b63ef98fb50de5090bc38c",
    "10-wide": "de2d513bc064c8a6dbaeee1cd4d535f03504b11c83e7078c0756620300e99d08",
    "10-paper": "a9ad778d62e2ef8aed95e288d6de493ee8ae5a3a8a755fcb2727105adb6d0886",
    "10-touching": "8d329652f5419abf2e04490e6181d0861c3f656ca955a73fcb0cf607b12f48dc",
    "5-paper-noise": "14187ab8840d5ffd8121a7f1382ef3a56cafbafb54fed4b5c600e68ea4727510",
    "5-paper-photo": "ac10996c707300778135a2a56c80539cc01d696ad756298579d3f60897eb506d",
}


def _seed(part: str) -> int:
    return int.from_bytes(hashlib.sha256(f"lenet.strings/{part}".encode()).digest()[:8], "little")


def _parse(part: str) -> tuple[int, str, str]:
    if part not in PARTS:
        raise DatasetError(f"string benchmark part {part!r}: expected one of {', '.join(PARTS)}")
    length, spacing, *variant = part.split("-")
    return int(length), spacing, variant[0] if variant else ""


def build_part(part: str, images: np.ndarray, labels: np.ndarray,
               count: int | None = None) -> Strings:
    """Build benchmark part `part` from `images`/`labels` (:func:`benchmark` passes MNIST's
    test digits) with its fixed seed; `count` strings (default: the part's own count).

    >>> d = np.zeros((10, 28, 28), np.uint8); d[:, 6:22, 10:18] = 255
    >>> len(build_part("9-touching", d, np.arange(10), count=3).texts[0])
    9
    """
    length, spacing, variant = _parse(part)
    rng = np.random.default_rng(_seed(part))
    n = count if count is not None else PHOTO_COUNT if variant == "photo" else COUNT
    s = sample_strings(images, labels, n, length, spacing, rng)
    if variant == "noise":
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        noisy = [salt_pepper(torch.from_numpy(x), NOISE, gen).to(torch.uint8).numpy()
                 for x in s.images]
        s = Strings(noisy, s.texts, s.boxes)
    elif variant == "photo":
        s = Strings([photo.render(x, photo.STYLES[i % len(photo.STYLES)], rng)
                     for i, x in enumerate(s.images)], s.texts, s.boxes)
    return s


def digest(s: Strings) -> str:
    """The SHA-256 of a part's content: every string's text, image shape, pixels and boxes.

    >>> len(digest(Strings([np.zeros((28, 9), np.uint8)], ["1"], [np.array([[3, 6]])])))
    64
    """
    h = hashlib.sha256()
    for image, text, boxes in zip(s.images, s.texts, s.boxes, strict=True):
        h.update(text.encode() + b"\0")
        h.update(np.asarray(image.shape, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        h.update(np.ascontiguousarray(boxes, dtype="<i8").tobytes())
    return h.hexdigest()


def _encode(s: Strings) -> bytes:
    shapes = np.array([(*x.shape, 0)[:3] if x.ndim == 2 else x.shape for x in s.images],
                      dtype=np.int64).reshape(-1, 3)
    tensors = {"pixels": np.concatenate([x.ravel() for x in s.images]),
               "shapes": shapes,
               "boxes": np.concatenate(s.boxes).astype(np.int64).reshape(-1, 2)}
    tensors["texts"] = np.frombuffer(",".join(s.texts).encode(), dtype=np.uint8)
    return safetensors.numpy.save(tensors)


def _decode(data: bytes) -> Strings:
    tensors = safetensors.numpy.load(data)
    texts = tensors["texts"].tobytes().decode().split(",")
    images, boxes, at, row = [], [], 0, 0
    for (h, w, c), text in zip(tensors["shapes"].tolist(), texts, strict=True):
        shape = (h, w, c) if c else (h, w)
        size = int(np.prod(shape))
        images.append(tensors["pixels"][at:at + size].reshape(shape))
        boxes.append(tensors["boxes"][row:row + len(text)])
        at, row = at + size, row + len(text)
    return Strings(images, texts, boxes)


def cache_path(part: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`benchmark` keeps part `part`: ``<data dir>/strings/<part>-<pin>.safetensors``
    (the pin in the name: a part built by an older lenet is never mistaken for this one's).

    >>> cache_path("5-paper", "/data").parent
    PosixPath('/data/strings')
    """
    _parse(part)
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return root / "strings" / f"{part}-{PINS.get(part, 'unpinned')[:12]}.safetensors"


def benchmark(data_dir: str | os.PathLike[str] | None = None,
              parts: Sequence[str] | None = None) -> dict[str, Strings]:
    """The frozen string benchmark, from MNIST *test* digits only: {part: Strings} for
    `parts` (default: all of :data:`PARTS`). A part is built once with its fixed seed, its
    SHA-256 checked against :data:`PINS`, and cached under the data dir (safetensors);
    a cached copy is checked again on every load. Parts: lengths 5, 9, 10 at each spacing
    ("5-wide", "9-paper", "10-touching", ...), "5-paper-noise" (10 % salt-and-pepper) and
    "5-paper-photo" (the strips as photos, :func:`lenet.data.photo.render`).

    >>> bench = benchmark(parts=["5-paper"])          # doctest: +SKIP
    >>> len(bench["5-paper"]), bench["5-paper"].texts[0]   # doctest: +SKIP
    (1000, '...')
    """
    names = list(PARTS if parts is None else parts)
    for part in names:
        _parse(part)
    out: dict[str, Strings] = {}
    test: tuple[np.ndarray, np.ndarray] | None = None
    for part in names:
        path = cache_path(part, data_dir)
        if path.is_file():
            out[part] = _check(part, _decode(path.read_bytes()), f"{path} (delete it: it is "
                               "rebuilt on the next use)")
            continue
        if test is None:
            test = read_split("mnist", "test", data_dir)
        built = _check(part, build_part(part, *test), "the part as built here (the builder, "
                       "numpy's random streams or the MNIST test file differ from lenet's)")
        atomic.write_bytes(path, _encode(built))
        out[part] = built
    return out


def _check(part: str, s: Strings, what: str) -> Strings:
    got, pin = digest(s), PINS.get(part)
    if got != pin:
        raise DatasetError(f"string benchmark part {part!r}: sha256 {got[:16]}... does not "
                           f"match the pinned {str(pin)[:16]}...: {what}")
    return s


def current_pins(data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Each part's SHA-256 as built here now, to remake :data:`PINS` after a deliberate change
    to the builder or to :func:`lenet.data.photo.render` (``python -m lenet.data.strings``).

    >>> sorted(current_pins()) == sorted(PARTS)          # doctest: +SKIP
    True
    """
    images, labels = read_split("mnist", "test", data_dir)
    return {part: digest(build_part(part, images, labels)) for part in PARTS}


if __name__ == "__main__":
    for name, pin in current_pins().items():
        print(f'    "{name}": "{pin}",')
