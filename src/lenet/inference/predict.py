"""Read real handwriting: image files in, digits out, with MNIST's own preprocessing
(:mod:`lenet.inference.preprocess`), then the model's own normalization and padding from the
weights' metadata.

The network is run by :class:`Predictor`, with torch or with ONNX Runtime (``backend=
"onnxruntime"``): given a ``.onnx`` file from `lenet export` it is used as is; given safetensors
weights, the model is exported to ONNX in memory first (nothing is written next to the weights).
:func:`predict_files` is `lenet predict`: files, folders and globs in, one result per file out.
"""

from __future__ import annotations

import glob
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from lenet.data.transforms import Preprocessing
from lenet.errors import LenetError
from lenet.inference.export import ExportError, make_session, read_metadata, to_onnx
from lenet.inference.preprocess import ImageError, preprocess_image
from lenet.models import weights
from lenet.storage import atomic

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
        order = np.argsort(-np.asarray(self.probabilities), kind="stable")[:k]
        return [{"digit": int(i), "label": classes[int(i)],
                 "probability": float(self.probabilities[int(i)])} for i in order]


@dataclass
class Predictor:
    """A loaded network plus its metadata; feeds it MNIST-style uint8 digits."""

    model_name: str
    classes: list[str]
    preprocessing: Preprocessing
    test_accuracy: float | None
    dataset: str
    backend: str = "torch"
    model: nn.Module | None = None  # the torch backend's (also kept by onnxruntime's from weights)
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
        model, meta = weights.load_model(path)
        pred = cls(meta.model, list(meta.classes), meta.preprocessing, meta.test_accuracy,
                   meta.dataset, "torch", model=model, extra=dict(meta.extra))
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

    def scores(self, digits: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) white-on-black -> float32 (N, classes) raw model scores."""
        x = self.preprocessing(torch.from_numpy(np.ascontiguousarray(digits, dtype=np.uint8)))
        if self.backend == "onnxruntime":
            name = self.session.get_inputs()[0].name
            return np.asarray(self.session.run(None, {name: x.numpy()})[0], dtype=np.float32)
        assert self.model is not None, "a torch Predictor without its model"
        with torch.inference_mode():
            return np.asarray(self.model(x).float().numpy())

    def predict(self, digits: np.ndarray) -> list[Prediction]:
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
    return atomic.ensure_writable_dir(path, fix=f"choose another folder with {flag}")


def _save_name(path: Path, used: set[str]) -> str:
    stem = path.stem or "image"
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def png_bytes(digit: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(digit, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def predict_files(predictor: Predictor, items: list[str], top_k: int = 3,
                  save_dir: str | None = None) -> list[dict[str, Any]]:
    """One result dict per input file: the prediction, or {"path", "error"}; never raises for
    a bad image."""
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
