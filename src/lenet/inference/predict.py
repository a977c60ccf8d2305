"""Read real handwriting: image files in, digits out, with MNIST's own preprocessing
(:mod:`lenet.inference.preprocess`), then the model's own normalization and padding from the
weights' metadata.

A :class:`Predictor` takes anything an image is (see :meth:`Predictor.__call__`): a file's
path or bytes, a PIL image, a numpy array or a torch tensor, one image or a batch; image files
and pictures of any size go through MNIST's preprocessing, a 28x28 array is an MNIST digit as
it is. What it cannot take is refused before any work with an :class:`InputError` (a
ValueError) or :class:`InputTypeError` (a TypeError) that names the shapes, dtypes and ranges
it takes.

The network is run by :class:`Predictor`, with torch or with ONNX Runtime (``backend=
"onnxruntime"``): given a ``.onnx`` file from `lenet export` it is used as is; given safetensors
weights, the model is exported to ONNX in memory first (nothing is written next to the weights).
`lenet predict`'s files, folders and globs are :mod:`lenet.inference.files`'.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, overload

import numpy as np
import torch
from PIL import Image
from torch import nn

from lenet.data.transforms import PIXELS, SIDE, Preprocessing, from_array, gray_levels
from lenet.errors import LenetError
from lenet.inference import decoding, preprocess
from lenet.inference.decoding import MAX_DECODED_PIXELS, ImageError
from lenet.inference.export import ExportError, make_session, read_metadata, to_onnx
from lenet.inference.preprocess import MIN_CONTRAST, NoInkError, preprocess_image
from lenet.models import weights
from lenet.models.hub import DEFAULT_WEIGHTS

CHUNK = 512  # digits through the network at once: bounds the float planes of a huge batch
# One image (a path or bytes of a file, a PIL image, an array or tensor) or a batch (a list of
# images, or an array or tensor of N images). Every form is checked at run time.
ImageInput: TypeAlias = str | os.PathLike[str] | bytes | Image.Image | np.ndarray | torch.Tensor
EXPECTED = (
    "an image file's path or bytes, a PIL image, or gray levels as a numpy array (H, W) or "
    "(H, W, C), a batch (N, H, W) or (N, H, W, C), or a torch tensor (H, W) or (C, H, W), a "
    "batch (N, C, H, W), with C = 1 or 3 (RGBA arrays: 4) and at most "
    f"{MAX_DECODED_PIXELS // 1_000_000} megapixels an image")


class InputError(ImageError, ValueError):
    """An input a :class:`Predictor` cannot take (shape, size or values); says what it takes."""


class InputTypeError(ImageError, TypeError):
    """An input of a type that holds no image; says what a :class:`Predictor` takes."""


# --------------------------------------------------------------------------- the network
@dataclass
class Prediction:
    """What the network read in one image: its class (``index``, ``label``), every class's
    probability and raw score, and whether it is ``unsure`` (the margin between its two
    highest scores at most the weights' reject margin, chosen for 0.5 % error on held-out
    training digits). A blank image (no ink) is "no digit": ``label`` None, ``index`` -1, no
    scores.

    >>> Prediction(-1, None, [], []).to_dict()
    {'digit': None, 'label': None, 'confidence': None, 'unsure': False, 'no_digit': True}
    """

    index: int  # -1: no digit
    label: str | None  # None: no digit (a blank image)
    probabilities: list[float]
    scores: list[float]
    unsure: bool = False

    @property
    def no_digit(self) -> bool:
        return self.label is None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.index] if not self.no_digit else 0.0

    def top(self, k: int, classes: list[str]) -> list[dict[str, Any]]:
        order = np.argsort(-np.asarray(self.probabilities), kind="stable")[:k]
        return [{"digit": int(i), "label": classes[int(i)],
                 "probability": float(self.probabilities[int(i)])} for i in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: digit, label, confidence (None for no digit), unsure, no_digit."""
        return {"digit": None if self.no_digit else self.index, "label": self.label,
                "confidence": None if self.no_digit else self.confidence,
                "unsure": self.unsure, "no_digit": self.no_digit}

    def __str__(self) -> str:
        """``7``, ``7 (unsure)`` or ``no digit``, as `lenet predict` prints it."""
        if self.no_digit:
            return "no digit"
        return f"{self.label} (unsure)" if self.unsure else str(self.label)


@dataclass
class Predictor:
    """A loaded network plus its metadata: call it on an image or a batch (see
    :meth:`__call__` for what it takes), or give it files with :func:`predict_files`."""

    model_name: str
    classes: list[str]
    preprocessing: Preprocessing
    test_accuracy: float | None
    dataset: str
    backend: str = "torch"
    model: nn.Module | None = None  # the torch backend's (also kept by onnxruntime's from weights)
    session: Any = None  # onnxruntime.InferenceSession (onnxruntime backend)
    extra: dict[str, Any] = field(default_factory=dict)
    reject_margin: float | None = None  # the weights' own (None: never unsure)

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_WEIGHTS, backend: str | None = None
             ) -> Predictor:
        """Bundled weights' name (default: :data:`~lenet.models.hub.DEFAULT_WEIGHTS`), weights
        (run dir, .safetensors) or a .onnx file; backend None: onnxruntime for a .onnx file,
        torch otherwise."""
        p = Path(path)
        if backend is None:
            backend = "onnxruntime" if p.suffix == ".onnx" else "torch"
        if backend not in ("torch", "onnxruntime"):
            raise LenetError(f"unknown backend {backend!r}; use torch or onnxruntime")
        if p.suffix == ".onnx":
            if backend != "onnxruntime":
                raise LenetError(f"{p}: an ONNX file needs --backend onnxruntime")
            return cls.from_onnx(p)
        model, meta = weights.load_model(path)
        pred = cls(meta.model, list(meta.classes), meta.preprocessing, meta.test_accuracy,
                   meta.dataset, "torch", model=model, extra=dict(meta.extra),
                   reject_margin=meta.reject_margin)
        if backend == "onnxruntime":
            pred.session = make_session(to_onnx(model, meta).SerializeToString())
            pred.backend = "onnxruntime"
        return pred

    @classmethod
    def from_onnx(cls, path: str | os.PathLike[str]) -> Predictor:
        """A .onnx file written by `lenet export`, run by ONNX Runtime; what its input must be
        is read from the file's lenet metadata (see :mod:`lenet.inference.export`)."""
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

    @overload
    def __call__(self, x: str | os.PathLike[str] | bytes | Image.Image) -> Prediction: ...
    @overload
    def __call__(self, x: list[ImageInput] | tuple[ImageInput, ...]) -> list[Prediction]: ...
    @overload
    def __call__(self, x: np.ndarray | torch.Tensor) -> Prediction | list[Prediction]: ...

    def __call__(self, x: ImageInput | list[ImageInput] | tuple[ImageInput, ...]
                 ) -> Prediction | list[Prediction]:
        """One image in, one :class:`Prediction` out; a batch in, a list of them out.

        One image: a path or the bytes of an image file, a PIL image, a numpy array (H, W) or
        (H, W, C) (channels last, as PIL, OpenCV and matplotlib have them), or a torch tensor
        (H, W) or (C, H, W) (channels first, as torchvision has them). A batch: a list or
        tuple of images, a numpy array (N, H, W) (as ``MNIST.data.numpy()``) or (N, H, W, C),
        or a tensor (N, C, H, W) (as a DataLoader gives). C is 1 or 3 (an array may be RGBA,
        4); colour is made gray as an image file's is. So a numpy (1, 28, 28) is a batch of one
        and a tensor (1, 28, 28) one image (a tensor (N, 28, 28) is refused: which is it?).

        Pixels are uint8 in 0..255 (other integer dtypes with those values too) or float in
        [0, 1], float64 included (``ToTensor()``'s output); NaN, infinity, values outside the
        range (a tensor normalized with other statistics) and over
        :data:`~lenet.inference.decoding.MAX_DECODED_PIXELS` pixels an image are refused
        before any work, with an :class:`InputError` (a ValueError) naming what is taken.

        An array or tensor of exactly 28x28 is an MNIST digit, white ink on a black background,
        as :class:`lenet.data.MNIST`'s (one with a light background is refused), and goes to
        the network as it is. Any other size, and every image file or PIL image, is a picture:
        it goes through MNIST's own preprocessing, as `lenet predict` does (made gray, ink made
        white, cropped, scaled into 20x20, centred: :mod:`lenet.inference.preprocess`).

        >>> reader = Predictor.load("lenet5")
        >>> one = np.zeros((28, 28), np.uint8); one[4:24, 13:15] = 255   # a white stroke
        >>> reader(one).label
        '1'
        >>> [p.label for p in reader(np.stack([one, one]))]   # (N, H, W): a batch
        ['1', '1']
        >>> reader(torch.from_numpy(one) / 255.0).label     # a float tensor in [0, 1]
        '1'
        >>> reader(one * 300.0)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        lenet.inference.predict.InputError: input: float pixels up to 7.65e+04: floats must ...
        """
        digits, single = self._digits(x)
        predictions = self.predict_digits(digits)
        return predictions[0] if single else predictions

    def scores(self, x: ImageInput | list[ImageInput] | tuple[ImageInput, ...]) -> np.ndarray:
        """Raw model scores, float32 (N, classes), for an image or a batch (as for calling
        the predictor; N = 1 for one image).

        >>> Predictor.load("lenet5").scores(np.zeros((3, 28, 28), np.uint8)).shape
        (3, 10)
        """
        return self._scores_digits(self._digits(x)[0])

    def predict(self, x: ImageInput | list[ImageInput] | tuple[ImageInput, ...]
                ) -> list[Prediction]:
        """One :class:`Prediction` per image: a list of one for one image (see calling the
        predictor for what it takes).

        >>> seven = np.zeros((28, 28)); seven[6:9, 7:21] = 1.0; seven[9:23, 17:20] = 1.0
        >>> [p.label for p in Predictor.load("lenet5").predict(seven)]   # float in [0, 1]
        ['7']
        """
        return self.predict_digits(self._digits(x)[0])

    def predict_image(self, source: ImageInput) -> Prediction:
        """One image (a path or its bytes, a PIL image, an array or tensor of one image),
        preprocessed as `lenet predict` does for a file; a batch is an :class:`InputError`.

        >>> from PIL import Image
        >>> picture = Image.new("L", (60, 90), 255)       # black ink on white paper
        >>> picture.paste(0, (25, 10, 33, 80))            # a vertical stroke
        >>> Predictor.load("lenet5").predict_image(picture).label
        '1'
        """
        digits, single = self._digits(source)
        if not single:
            raise InputError(f"predict_image takes one image, not a batch of {len(digits)}; "
                             "use predict(), or call the predictor")
        return self.predict_digits(digits)[0]

    def _digits(self, x: Any) -> tuple[np.ndarray, bool]:
        """uint8 (N, 28, 28) MNIST-style digits for any input; True for one image."""
        if isinstance(x, (list, tuple)):
            return np.stack([_one_digit(item, f"item {i}") for i, item in enumerate(x)]
                            ) if x else np.zeros((0, SIDE, SIDE), np.uint8), False
        return _to_digits(x)

    def _scores_digits(self, digits: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) white-on-black digits -> float32 (N, classes) raw model scores."""
        digits = np.ascontiguousarray(digits, dtype=np.uint8)
        parts = [self._scores_chunk(digits[i:i + CHUNK]) for i in range(0, len(digits), CHUNK)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)

    def _scores_chunk(self, digits: np.ndarray) -> np.ndarray:
        x = self.preprocessing(torch.from_numpy(digits))
        if self.backend == "onnxruntime":
            name = self.session.get_inputs()[0].name
            return np.asarray(self.session.run(None, {name: x.numpy()})[0], dtype=np.float32)
        assert self.model is not None, "a torch Predictor without its model"
        with torch.inference_mode():
            return np.asarray(self.model(x).float().numpy())

    def predict_digits(self, digits: np.ndarray) -> list[Prediction]:
        """Predictions for digits already preprocessed as MNIST's are: uint8 (N, 28, 28),
        white ink on black, used as they are (no input checks beyond the model's: the server's
        transformed digits and `lenet predict`'s files take this path). A digit with no ink
        (nothing brighter than preprocessing's MIN_CONTRAST) is "no digit"; a prediction whose
        top-two margin is at most :attr:`reject_margin` is unsure."""
        s = self._scores_digits(digits).astype(np.float64)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        blank = np.asarray(digits).reshape(len(s), SIDE * SIDE).max(axis=1, initial=0) \
            < MIN_CONTRAST
        top2 = np.sort(s, axis=1)[:, -2:] if s.shape[1] >= 2 else np.zeros((len(s), 2))
        margin = top2[:, 1] - top2[:, 0]
        out = []
        for row_s, row_p, none, m in zip(s, probs, blank, margin, strict=True):
            if none:
                out.append(Prediction(-1, None, [], []))
                continue
            i = int(row_s.argmax())
            unsure = self.reject_margin is not None and not m > self.reject_margin
            out.append(Prediction(i, self.classes[i] if i < len(self.classes) else str(i),
                                  row_p.tolist(), row_s.tolist(), bool(unsure)))
        return out

    def first_conv_maps(self, digit: np.ndarray) -> dict[str, Any] | None:
        """Outputs of the model's first convolution for one digit (torch backend only)."""
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


# --------------------------------------------------------------------------- what an image is
def _to_digits(x: Any, label: str = "input") -> tuple[np.ndarray, bool]:
    """Any input -> uint8 (N, 28, 28) MNIST-style digits, and whether it was one image."""
    if isinstance(x, (str, os.PathLike)):
        return blank_if_no_ink(preprocess_image, x)[None], True
    if isinstance(x, (bytes, bytearray, memoryview)):
        return blank_if_no_ink(preprocess_image, bytes(x), label)[None], True
    if isinstance(x, Image.Image):
        return _picture(x, label)[None], True
    if isinstance(x, (np.ndarray, torch.Tensor)):
        pixels, single = array_pixels(x, label)
        return _array_digits(pixels, label), single
    raise InputTypeError(f"{label}: got {type(x).__name__}; expected {EXPECTED}; {PIXELS}")


def _one_digit(x: Any, label: str) -> np.ndarray:
    digits, single = _to_digits(x, label)
    if not single:
        raise InputError(f"{label}: a batch of {len(digits)} inside a list; a list holds one "
                         f"image an item: {EXPECTED}")
    return digits[0]


def array_pixels(x: np.ndarray | torch.Tensor, label: str) -> tuple[np.ndarray, bool]:
    """uint8 (N, H, W, C) gray levels of an array or tensor, its layout, size and values
    checked (the size before anything is converted); and whether it was one image."""
    shape = tuple(x.shape)
    nhwc, single = _layout(x, shape)
    if nhwc is None:
        raise InputError(f"{label}: {type(x).__name__} of shape {shape}; expected {EXPECTED}; "
                         f"{PIXELS}" + (" (for N gray digits, such as MNIST.data[:N], give "
                                        "x.unsqueeze(1) or x.numpy())"
                                        if isinstance(x, torch.Tensor) and len(shape) == 3
                                        else ""))
    _, h, w, _ = nhwc.shape
    if h * w > MAX_DECODED_PIXELS or h == 0 or w == 0:
        raise InputError(f"{label}: images of {h}x{w} pixels; expected {EXPECTED}; {PIXELS}")
    if isinstance(nhwc, np.ndarray):
        if nhwc.dtype.kind not in "biuf":
            raise InputTypeError(f"{label}: array of dtype {nhwc.dtype}; expected {EXPECTED}; "
                                 f"{PIXELS}")
        nhwc = from_array(nhwc)
    try:
        levels = gray_levels(nhwc.detach(), EXPECTED)
    except (TypeError, ValueError) as e:
        kind = InputTypeError if isinstance(e, TypeError) else InputError
        raise kind(f"{label}: {e}") from None
    if levels.dtype != torch.uint8:
        levels = levels.round_().to(torch.uint8)
    return levels.cpu().numpy(), single


def _layout(x: np.ndarray | torch.Tensor, shape: tuple[int, ...]
            ) -> tuple[np.ndarray | torch.Tensor | None, bool]:
    """`x` viewed as (N, H, W, C), or None where its shape is no image's; and whether it was
    one image. Arrays are channels last (numpy, PIL, OpenCV), tensors channels first
    (torchvision); see :meth:`Predictor.__call__`."""
    if isinstance(x, np.ndarray):
        channels_last = len(shape) >= 3 and shape[-1] in (1, 3, 4)
        if len(shape) == 2:
            return x[None, :, :, None], True
        if len(shape) == 3:
            return (x[None], True) if channels_last else (x[..., None], False)
        if len(shape) == 4 and (channels_last or shape[1] in (1, 3)):
            return (x if channels_last else x.transpose(0, 2, 3, 1)), False
        return None, False
    if len(shape) == 2:
        return x[None, :, :, None], True
    if len(shape) == 3 and shape[0] in (1, 3):
        return x.permute(1, 2, 0)[None], True
    if len(shape) == 4 and shape[1] in (1, 3):
        return x.permute(0, 2, 3, 1), False
    return None, False


def _array_digits(pixels: np.ndarray, label: str) -> np.ndarray:
    """uint8 (N, H, W, C) -> (N, 28, 28) digits: 28x28 ones as they are (made gray), others
    through MNIST's preprocessing, as a picture."""
    n, h, w, c = pixels.shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    if (h, w) != (SIDE, SIDE):
        return np.stack([_picture(Image.fromarray(p[..., 0] if c == 1 else p, mode),
                                  f"{label}[{i}]" if n > 1 else label)
                         for i, p in enumerate(pixels)]) if n else np.zeros((0, SIDE, SIDE),
                                                                            np.uint8)
    digits = pixels[..., 0] if c == 1 else np.stack(
        [np.rint(decoding.to_grayscale(Image.fromarray(p, mode), label)).astype(np.uint8)
         for p in pixels]).reshape(n, SIDE, SIDE)
    border = np.concatenate([digits[:, 0], digits[:, -1], digits[:, 1:-1, 0],
                             digits[:, 1:-1, -1]], axis=1)
    light = np.flatnonzero(np.median(border, axis=1) > 127.5) if n else np.zeros(0, int)
    if len(light):
        where = f"{label}[{light[0]}]" if n > 1 else label
        raise InputError(
            f"{where}: a {SIDE}x{SIDE} array is taken as an MNIST digit, white ink on black, "
            "but this one has a light background; invert it (255 - x), or give it as a PIL "
            "image or a file to have it preprocessed as MNIST's digits were made")
    return digits


def blank_if_no_ink(preprocess_fn: Any, *args: Any) -> np.ndarray:
    """`preprocess_fn(*args)`'s digit, or a blank one where the image holds no ink (which
    :meth:`Predictor.predict_digits` answers with "no digit")."""
    try:
        return np.asarray(preprocess_fn(*args), dtype=np.uint8)
    except NoInkError:
        return np.zeros((SIDE, SIDE), np.uint8)


def _picture(img: Image.Image, label: str) -> np.ndarray:
    """A PIL image, opened by the caller or made from an array, through what
    :func:`~lenet.inference.preprocess.preprocess_image` does to a file once it is open: the
    same size checks and bounded decode, then MNIST's preprocessing. Every refusal is an
    :class:`InputError`."""
    try:
        return blank_if_no_ink(preprocess.preprocess_opened, img, label)
    except InputError:
        raise
    except ImageError as e:
        raise InputError(str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{label}: unreadable image ({e})") from None


def _check_onnx_io(session: Any, side: int, classes: int, path: str | os.PathLike[str]
                   ) -> None:
    """The graph's fixed input and output sizes agree with its lenet metadata (an ONNX file
    carries no checksum; a mismatch would fail on every digit instead of here)."""
    for what, port, want in (("input", session.get_inputs()[0], [1, side, side]),
                             ("output", session.get_outputs()[0], [classes])):
        got = list(port.shape[1:])  # after the batch size; a named (free) size matches any
        if len(got) != len(want) or any(isinstance(g, int) and g != w
                                        for g, w in zip(got, want, strict=True)):
            raise ExportError(f"{path}: the graph's {what} is (N, {', '.join(map(str, got))}) "
                              f"but its lenet metadata says (N, {', '.join(map(str, want))}); "
                              "export it again with `lenet export`")
