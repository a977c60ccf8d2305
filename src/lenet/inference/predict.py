"""Read real handwriting: image files in, digits out, with MNIST's own preprocessing.

MNIST's digits were made this way (LeCun et al.): size-normalized to fit a 20x20 box keeping the
aspect ratio, anti-aliased, then centred in a 28x28 field by their centre of mass. A photo or a
scan only looks like an MNIST digit after the same steps, which :func:`mnist_preprocess` applies:

1. alpha composited on white, then grayscale (any mode Pillow converts: L, RGB, RGBA, P, 1,
   I;16, CMYK, ...; one it cannot, such as LAB, is an :class:`UnsupportedImageError`);
2. inverted when the background is light (decided from the border pixels), so ink is white;
3. contrast stretched so the background is 0 and the strongest ink 255, faint noise zeroed;
4. cropped to the ink's bounding box;
5. the longest side scaled to 20 px keeping the aspect ratio, anti-aliased (Lanczos), and the
   peak brought back to 255 (every MNIST digit peaks at 254-255);
6. pasted into 28x28 so that the centre of mass sits at (14, 14) (MNIST's own mean);

then the model's own normalization and padding from the weights' metadata.

Decoding is bounded, because a 200 KB PNG can declare 49 megapixels (over 1 GB once decoded,
composited and turned into floats): an image whose header declares over :data:`MAX_PIXELS` is
refused unread; a JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (``draft``) when large,
and straight to grayscale; any other format is decoded at full size, so over
:data:`MAX_DECODED_PIXELS` it is refused (scale it down, or send a JPEG); what is decoded is then
shrunk by whole-pixel averaging (``reduce``) to about :data:`WORK_PIXELS` before any float
work. A digit never needs more: it ends up 20 px tall.

The network is run by :class:`Predictor`, with torch or with ONNX Runtime (``backend=
"onnxruntime"``): given a ``.onnx`` file from `lenet export` it is used as is; given safetensors
weights, the model is exported to ONNX in memory first (nothing is written next to the weights).
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lenet.errors import LenetError

if TYPE_CHECKING:
    import numpy as np

MAX_PIXELS = 50_000_000  # declared in the header: refused before anything is decoded
# Decoded at full size (any format but a large JPEG): 64 MB for 16 MP of RGBA, 4000x4000.
MAX_DECODED_PIXELS = 16_000_000
WORK_PIXELS = 2_000_000  # larger decoded images are averaged down to about this size
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BOX = 20  # MNIST's size-normalization box
SIDE = 28
CENTRE = 14.0  # where MNIST's centres of mass sit (mean over the test set: 13.99, 14.00)
INK_THRESHOLD = 0.2  # of the stretched range: what counts as ink for the bounding box
NOISE_FLOOR = 0.08  # of the stretched range: zeroed as paper texture / sensor noise
MIN_CONTRAST = 24.0  # gray levels between background and strongest ink, else "no ink"


class ImageError(LenetError):
    """An input image is unreadable, not an image, too large, or holds no ink."""


class NotAnImageError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    pass


class NoInkError(ImageError):
    pass


class UnsupportedImageError(ImageError):
    """The file decodes, but its pixel mode cannot be turned into grayscale (e.g. LAB)."""


# --------------------------------------------------------------------------- images
def open_image(source: str | os.PathLike[str] | bytes, name: str | None = None):
    """Open and decode an image (an animation's first frame), bounded in memory: a huge one is
    refused unread, a large one decoded at reduced size where the format allows it (JPEG) and
    averaged down to about :data:`WORK_PIXELS` (see the module's docstring)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise LenetError("reading images needs Pillow, a dependency of lenet missing here: "
                         "pip install 'pillow>=10'") from None

    label = name or (str(source) if not isinstance(source, bytes) else "image")
    fp = io.BytesIO(source) if isinstance(source, bytes) else _open_regular(source, label)
    with fp:
        try:
            with Image.open(fp) as img:
                return _decode_bounded(img, label)
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(f"{label}: image too large to decode safely ({e})") from None
        except UnidentifiedImageError:
            raise NotAnImageError(f"{label}: not an image (supported: PNG, JPEG, BMP, GIF, "
                                  "TIFF, WebP)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{label}: unreadable or truncated image ({e})") from None


def _open_regular(path: str | os.PathLike[str], label: str) -> io.BufferedReader:
    """`path` opened for reading, if it is a regular file; a FIFO, socket or device is refused.

    Opened without blocking and checked on the open descriptor (no race with a rename): a
    plain open() of a FIFO waits forever for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ImageError(f"{label}: cannot read file ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)"
                if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise NotAnImageError(f"{label}: not a regular file but {kind}; give an image file")
    return os.fdopen(fd, "rb")


def _decode_bounded(img, label: str):
    """The first frame of an opened image, decoded within MAX_PIXELS / MAX_DECODED_PIXELS and
    averaged down to about WORK_PIXELS."""
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{label}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels (scale it down first)")
    img.seek(0)
    if w * h > WORK_PIXELS:
        # JPEG only (a no-op elsewhere): libjpeg decodes at 1/2, 1/4 or 1/8 scale, and an RGB
        # one straight to grayscale (its Y channel), so the full-size image never exists.
        side = math.sqrt(w * h / WORK_PIXELS)
        img.draft("L", (max(1, math.ceil(w / side)), max(1, math.ceil(h / side))))
    dw, dh = img.size
    if dw * dh > MAX_DECODED_PIXELS:
        raise ImageTooLargeError(
            f"{label}: image is {dw}x{dh} = {dw * dh / 1e6:.1f} megapixels; a {img.format} "
            f"image is decoded at full size, and the limit for that is "
            f"{MAX_DECODED_PIXELS / 1e6:.0f} megapixels; scale it down first (a JPEG may have "
            f"up to {MAX_PIXELS / 1e6:.0f}: it is decoded at reduced size)")
    img.load()
    small = _shrink(img)
    return img.copy() if small is img else small


def _shrink(img):
    """`img`, averaged by a whole factor down to about WORK_PIXELS (itself if small enough).

    ``reduce`` averages pixel values, so palette indices are first made colours and 16-bit
    grayscale is scaled to 0-255 (as :func:`to_grayscale` would); RGBA and LA are averaged
    premultiplied by Pillow, so transparency is composited right afterwards."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    factor = math.ceil(math.sqrt(w * h / WORK_PIXELS))
    if factor <= 1:
        return img
    if img.mode.startswith("I;16"):
        small = img.convert("I").reduce(factor)
        return Image.fromarray(np.asarray(small, np.float32) / np.float32(257.0))  # mode F
    if img.mode in ("P", "PA"):
        transparent = img.mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "L")
    elif img.mode == "1":
        img = img.convert("L")
    return img.reduce(factor)


def to_grayscale(img, name: str = "image") -> np.ndarray:
    """Any PIL image -> float64 (H, W) in [0, 255], transparency composited on white.

    A mode Pillow cannot convert (LAB, say) is an :class:`UnsupportedImageError` naming it."""
    try:
        return _to_grayscale(img, name)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, SyntaxError, EOFError) as e:
        raise UnsupportedImageError(
            f"{name}: unsupported image mode {img.mode} (cannot convert it to grayscale: {e}); "
            "save it as grayscale or RGB") from None


def _to_grayscale(img, name: str) -> np.ndarray:
    import numpy as np
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():  # a float TIFF (mode F) can hold NaN or Infinity
            raise ImageError(f"{name}: the image holds non-finite values (NaN or Infinity)")
        if mode.startswith("I;16"):
            return arr / 257.0
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 255:
            return arr
        return (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    if (mode == "P" and "transparency" in img.info) or mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img.convert("L"), dtype=np.float64)


def _border(gray: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def mnist_preprocess(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale (H, W) of any size -> uint8 (28, 28), white ink on black, as MNIST was made."""
    import numpy as np
    from PIL import Image

    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"{name}: expected a 2-D grayscale image, got shape {gray.shape}")
    if float(np.median(_border(gray))) > 127.5:  # light paper, dark ink: make ink white
        gray = 255.0 - gray
    background = float(np.median(_border(gray)))
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        raise NoInkError(f"{name}: no ink found (the image is blank or has too little contrast)")
    ink = np.clip((gray - background) * (255.0 / (peak - background)), 0.0, 255.0)
    ink[ink < NOISE_FLOOR * 255.0] = 0.0
    rows = np.flatnonzero((ink >= INK_THRESHOLD * 255.0).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD * 255.0).any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0.0, 255.0)
    mass = digit.sum()
    if mass <= 0:
        raise NoInkError(f"{name}: no ink left after scaling the digit to {BOX} px")
    digit *= 255.0 / digit.max()  # every MNIST digit peaks at 254-255; thin strokes fade
    # Rounded to the gray levels it is stored with *before* the centre of mass is measured, so
    # that the whole-pixel placement below puts the stored digit's centre within 0.5 px of 14.
    digit = np.rint(digit)
    mass = digit.sum()
    cy = float((digit.sum(axis=1) * np.arange(new_h)).sum() / mass)
    cx = float((digit.sum(axis=0) * np.arange(new_w)).sum() / mass)
    top = min(max(round(CENTRE - cy), 0), SIDE - new_h)
    left = min(max(round(CENTRE - cx), 0), SIDE - new_w)
    out = np.zeros((SIDE, SIDE), dtype=np.float64)
    out[top:top + new_h, left:left + new_w] = digit
    return np.rint(out).astype(np.uint8)


def preprocess_image(source: str | os.PathLike[str] | bytes, name: str | None = None
                     ) -> np.ndarray:
    """An image file (path or bytes) -> uint8 (28, 28) white-on-black MNIST-style digit."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    img = open_image(source, label)
    try:
        return mnist_preprocess(to_grayscale(img, label), label)
    finally:
        img.close()


def preprocess_pixels(pixels: Any, name: str = "pixels") -> np.ndarray:
    """784 numbers 0-255 (white ink on black, row-major) -> the MNIST-style 28x28 digit."""
    import numpy as np

    arr = np.asarray(pixels, dtype=np.float64)
    if arr.size != SIDE * SIDE:
        raise ImageError(f"{name}: expected {SIDE * SIDE} pixels, got {arr.size}")
    arr = arr.reshape(SIDE, SIDE)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise ImageError(f"{name}: pixel values must be numbers in 0..255")
    # Already white-on-black by contract: never invert, even if the border happens to be lit.
    if float(np.median(_border(arr))) > 127.5:
        raise ImageError(f"{name}: expected white ink on a black background")
    return mnist_preprocess(arr, name)


# --------------------------------------------------------------------------- the network
@dataclass
class Prediction:
    index: int
    label: str
    probabilities: list[float]
    scores: list[float]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.index]

    def top(self, k: int, classes: list[str]) -> list[dict[str, Any]]:
        import numpy as np

        order = np.argsort(-np.asarray(self.probabilities), kind="stable")[:k]
        return [{"digit": int(i), "label": classes[int(i)],
                 "probability": float(self.probabilities[int(i)])} for i in order]


@dataclass
class Predictor:
    """A loaded network plus its metadata; feeds it MNIST-style uint8 digits."""

    model_name: str
    classes: list[str]
    preprocessing: Any  # lenet.data.transforms.Preprocessing
    test_accuracy: float | None
    dataset: str
    backend: str = "torch"
    model: Any = None  # torch nn.Module (torch backend)
    session: Any = None  # onnxruntime.InferenceSession (onnxruntime backend)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str], backend: str | None = None) -> Predictor:
        """Bundled weights' name, weights (run dir, .safetensors) or a .onnx file; backend
        None: onnxruntime for a .onnx file, torch otherwise."""
        p = Path(path)
        if backend is None:
            backend = "onnxruntime" if p.suffix == ".onnx" else "torch"
        if backend not in ("torch", "onnxruntime"):
            raise LenetError(f"unknown backend {backend!r}; use torch or onnxruntime")
        if p.suffix == ".onnx":
            if backend != "onnxruntime":
                raise LenetError(f"{p}: an ONNX file needs --backend onnxruntime")
            return cls.from_onnx(p)
        from lenet.models import weights

        model, meta = weights.load_model(path)
        pred = cls(meta.model, list(meta.classes), meta.preprocessing, meta.test_accuracy,
                   meta.dataset, "torch", model=model, extra=dict(meta.extra))
        if backend == "onnxruntime":
            from lenet.inference.export import make_session, to_onnx

            pred.session = make_session(to_onnx(model, meta).SerializeToString())
            pred.backend = "onnxruntime"
        return pred

    @classmethod
    def from_onnx(cls, path: str | os.PathLike[str]) -> Predictor:
        """A .onnx file written by `lenet export`, run by ONNX Runtime; what its input must be
        is read from the file's lenet metadata (see :mod:`lenet.inference.export`)."""
        from lenet.data.transforms import Preprocessing
        from lenet.inference.export import ExportError, make_session, read_metadata

        p = Path(path)
        if not p.is_file():
            raise ExportError(f"{p}: no such ONNX file (make one with `lenet export`)")
        props = read_metadata(p)
        try:
            prep = Preprocessing.from_dict(json.loads(props["lenet.preprocessing"]),
                                           source=str(p))
            classes = [str(c) for c in json.loads(props["lenet.classes"])]
            model = props["lenet.model"]
            accuracy = json.loads(props.get("lenet.test_accuracy", "null"))
        except (KeyError, TypeError, json.JSONDecodeError, RecursionError) as e:
            raise ExportError(f"{p}: ONNX file without lenet metadata ({e!r:.200}); export it "
                              "with `lenet export`") from None
        session = make_session(p)
        _check_onnx_io(session, prep.input_size, len(classes), p)
        return cls(model, classes, prep, accuracy, props.get("lenet.dataset", "mnist"),
                   backend="onnxruntime", session=session)

    def scores(self, digits: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) white-on-black -> float32 (N, classes) raw model scores."""
        import numpy as np
        import torch

        x = self.preprocessing(torch.from_numpy(np.ascontiguousarray(digits, dtype=np.uint8)))
        if self.backend == "onnxruntime":
            name = self.session.get_inputs()[0].name
            return np.asarray(self.session.run(None, {name: x.numpy()})[0], dtype=np.float32)
        with torch.inference_mode():
            return self.model(x).float().numpy()

    def predict(self, digits: np.ndarray) -> list[Prediction]:
        import numpy as np

        s = self.scores(digits).astype(np.float64)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        out = []
        for row_s, row_p in zip(s, probs, strict=True):
            i = int(row_s.argmax())
            out.append(Prediction(i, self.classes[i] if i < len(self.classes) else str(i),
                                  row_p.tolist(), row_s.tolist()))
        return out

    def predict_image(self, source: str | os.PathLike[str] | bytes) -> Prediction:
        """One image file (a path or its bytes), preprocessed as `lenet predict` does."""
        return self.predict(preprocess_image(source)[None])[0]

    def first_conv_maps(self, digit: np.ndarray) -> dict[str, Any] | None:
        """Outputs of the model's first convolution for one digit (torch backend only)."""
        import numpy as np
        import torch
        from torch import nn

        if self.model is None:
            return None
        conv = next(((n, m) for n, m in self.model.named_modules()
                     if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            return None
        name, module = conv
        x = self.preprocessing(torch.from_numpy(np.ascontiguousarray(digit[None], np.uint8)))
        with torch.inference_mode():
            maps = module(x)[0].float().numpy()
        return {"layer": name, "shape": list(maps.shape), "maps": maps}

    def info(self) -> dict[str, Any]:
        return {"model": self.model_name, "dataset": self.dataset, "classes": self.classes,
                "test_accuracy": self.test_accuracy, "backend": self.backend,
                "preprocessing": self.preprocessing.to_dict(),
                "input_size": self.preprocessing.input_size}


def _check_onnx_io(session: Any, side: int, classes: int, path: str | os.PathLike[str]
                   ) -> None:
    """The graph's fixed input and output sizes agree with its lenet metadata (an ONNX file
    carries no checksum; a mismatch would fail on every digit instead of here)."""
    from lenet.inference.export import ExportError

    for what, port, want in (("input", session.get_inputs()[0], [1, side, side]),
                             ("output", session.get_outputs()[0], [classes])):
        got = list(port.shape[1:])  # after the batch size; a named (free) size matches any
        if len(got) != len(want) or any(isinstance(g, int) and g != w
                                        for g, w in zip(got, want, strict=True)):
            raise ExportError(f"{path}: the graph's {what} is (N, {', '.join(map(str, got))}) "
                              f"but its lenet metadata says (N, {', '.join(map(str, want))}); "
                              "export it again with `lenet export`")


# --------------------------------------------------------------------------- inputs
def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, directories (their image files, recursively, sorted) and globs -> paths.

    Returns (paths, problems) where problems are (argument, message) for arguments that match
    nothing. Files named explicitly are kept whatever their extension (so a non-image gets its
    own clear message); inside directories only image extensions are taken.
    """
    paths: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append((item, "directory holds no image files "
                                       f"({', '.join(IMAGE_EXTENSIONS)})"))
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
            if not found:
                problems.append((item, "pattern matches no files"))
            paths.extend(found)
        else:
            problems.append((item, "no such file or directory"))
    return paths, problems


def check_save_dir(path: str | os.PathLike[str], flag: str = "--save-preprocessed") -> Path:
    """Check, before any work, that PNGs can be written into the folder `path` (made later, with
    its parents, if missing); raise :class:`~lenet.errors.OutputError` naming it otherwise."""
    from lenet.storage.atomic import ensure_writable_dir

    return ensure_writable_dir(path, fix=f"choose another folder with {flag}")


def _save_name(path: Path, used: set[str]) -> str:
    stem = path.stem or "image"
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def png_bytes(digit: np.ndarray) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(digit, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def predict_files(predictor: Predictor, items: list[str], top_k: int = 3,
                  save_dir: str | None = None) -> list[dict[str, Any]]:
    """One result dict per input file: the prediction, or {"path", "error"}; never raises for
    a bad image."""
    import numpy as np

    from lenet.storage import atomic

    if save_dir is not None:  # before the work, so that no result is lost to it
        check_save_dir(save_dir)
    paths, problems = expand_inputs(items)
    results: list[dict[str, Any]] = [{"path": a, "error": m} for a, m in problems]
    ok: list[tuple[int, Path, np.ndarray]] = []
    for path in paths:
        try:
            digit = preprocess_image(path)
        except ImageError as e:
            results.append({"path": str(path), "error": str(e).removeprefix(f"{path}: ")})
            continue
        except Exception as e:  # a decoder failure nobody foresaw: this file fails, not the batch
            results.append({"path": str(path),
                            "error": f"cannot process this image ({type(e).__name__}: {e})"})
            continue
        results.append({"path": str(path)})
        ok.append((len(results) - 1, path, digit))
    used: set[str] = set()
    for start in range(0, len(ok), 512):
        chunk = ok[start:start + 512]
        preds = predictor.predict(np.stack([d for _, _, d in chunk]))
        for (i, path, digit), pred in zip(chunk, preds, strict=True):
            r = results[i]
            r.update({"digit": pred.index, "label": pred.label,
                      "confidence": pred.confidence, "top_k": pred.top(top_k, predictor.classes)})
            if save_dir is not None:
                target = Path(save_dir) / _save_name(path, used)
                atomic.write_bytes(target, png_bytes(digit))
                r["preprocessed"] = str(target)
    return results
