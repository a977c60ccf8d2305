"""`lenet predict`'s and `lenet read`'s inputs and outputs on disk: files, folders and globs in
(:func:`expand_inputs`), one result per file out (:func:`predict_files`, :func:`read_files`), a
bad file failing alone; the preprocessed digits saved as PNGs where asked
(:func:`check_save_dir` first)."""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from lenet.inference.decoding import ImageError
from lenet.inference.predict import Predictor, blank_if_no_ink
from lenet.inference.preprocess import preprocess_image
from lenet.runtime.workers import fork_map
from lenet.storage import atomic

if TYPE_CHECKING:
    from lenet.inference.read.reader import Reader

T = TypeVar("T")
READ_CHUNK = 1024  # files normalized, then read, at once: bounds the strips held in memory
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
    ok = _each_file(paths, results, "path", lambda path: blank_if_no_ink(preprocess_image, path))
    used: set[str] = set()
    for start in range(0, len(ok), 512):
        chunk = ok[start:start + 512]
        preds = predictor.predict_digits(np.stack([d for _, _, d in chunk]))
        for (i, path, digit), pred in zip(chunk, preds, strict=True):
            r = results[i]
            r.update({**pred.to_dict(), "top_k": pred.top(top_k, predictor.classes)})
            if save_dir is not None:
                target = Path(save_dir) / _save_name(path, used)
                atomic.write_bytes(target, png_bytes(digit))
                r["preprocessed"] = str(target)
    return results


def read_files(reader: Reader, items: list[str], length: int | None = None,
               pattern: str | None = None, columns: bool = True) -> list[dict[str, Any]]:
    """One result per file for ``lenet read`` (``{"file", **reading}``, or ``{"file", "error"}``
    for a file that fails alone), in the order given; each reading with the SDNN's columns
    and path where `columns` (``--json`` prints them; a line of text does not).

    A reader with `workers` > 1 shares the files among this process and forked copies of it
    (:meth:`~lenet.inference.read.reader.Reader.shares`,
    :func:`lenet.runtime.workers.fork_map`), each reading its share on a core of its own. Not
    threads: normalizing a file holds Python's lock, and two threads, one normalizing while
    the other ran the network, were slower than one after the other.
    """
    paths, problems = expand_inputs(items)
    results: list[dict[str, Any]] = [{"file": a, "error": m} for a, m in problems]
    for part in fork_map(lambda part: _read_paths(reader, part, length, pattern, columns),
                         reader.shares(paths)):
        results.extend(part)
    return results


def _read_paths(reader: Reader, paths: Sequence[Path], length: int | None,
                pattern: str | None, columns: bool = True) -> list[dict[str, Any]]:
    """:func:`read_files` of paths, in this process: :data:`READ_CHUNK` files normalized, then
    read, at a time."""
    from lenet.inference.read.line import to_line  # noqa: PLC0415  (predict need not load it)

    results: list[dict[str, Any]] = []
    for start in range(0, len(paths), READ_CHUNK):
        done = _each_file(paths[start:start + READ_CHUNK], results, "file",
                          lambda path: to_line(path, str(path)))
        readings = reader.read_lines([line for _, _, line in done], length=length,
                                     pattern=pattern)
        for (i, _, _), reading in zip(done, readings, strict=True):
            results[i].update(reading.to_dict(columns))
    return results


def _each_file(paths: Sequence[Path], results: list[dict[str, Any]], key: str,
               make: Callable[[Path], T]) -> list[tuple[int, Path, T]]:
    """`make` of each file, with the slot of its result in `results` (appended to it:
    ``{key: path}``, or ``{key: path, "error": ...}`` for a file that fails alone, never the
    batch)."""
    done: list[tuple[int, Path, T]] = []
    for path in paths:
        try:
            value = make(path)
        except ImageError as e:
            results.append({key: str(path), "error": str(e).removeprefix(f"{path}: ")})
            continue
        except Exception as e:  # a decoder failure nobody foresaw: this file fails alone
            results.append({key: str(path),
                            "error": f"cannot process this image ({type(e).__name__}: {e})"})
            continue
        results.append({key: str(path)})
        done.append((len(results) - 1, path, value))
    return done
