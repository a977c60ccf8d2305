"""How fast numbers are read: :class:`~lenet.inference.read.reader.Reader` (``lenet.read``) and
``lenet read``'s file path on 1,000 five-digit numbers built from MNIST *test* digits at the
paper's spacing (:func:`lenet.data.strings.sample_strings`), in numbers per second.

Three inputs: the strips as arrays (what the string benchmark hands a reader), the same as PNG
bytes of dark ink on white paper (decoded and line-normalized first), and PNG files in a folder
read as ``lenet read DIR`` reads them for its lines of text (in process: the command's work
without the interpreter's start; ``--json``'s output columns are left out). Each is read by
this process alone on the threads asked for (default 2: the issue's goal is 2,000 numbers/s on
2 CPU cores), and (the ``_workers`` rows) shared among that many processes of one thread
each, this one and forked copies of it: ``Reader(workers=N)``, and ``lenet read``'s default on
N free cores. Each figure is the median of a few timed repeats after a warm-up pass, with the
CPU time a number took in this process (all threads; a worker's is not counted), which other
work on the machine does not inflate as it does the wall-clock rate.

Those rows are a warm process's. A command starts cold, so two more rows start a fresh process
each time (the medians of `repeats` processes): ``first_call`` times ``lenet read``'s own work,
its first call on the files (with ``--workers`` 1, then N; the interpreter's start and the
reader's loading left out, but not the one-time costs of a process's first file and first
batch), and ``command`` is the whole ``lenet read DIR`` as a user runs it, start to end.

``python -m lenet.bench.reading [--threads N] [--repeats K] [--method sdnn|segment|components]``
prints one JSON object (with the CPU's name and the load average, since other work on the
machine lowers every figure).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lenet.bench.hardware import load_average, run_json
from lenet.data.datasets import read_split
from lenet.data.strings import sample_strings
from lenet.errors import LenetError
from lenet.inference.files import read_files
from lenet.inference.read.reader import Reader
from lenet.runtime import jobs
from lenet.runtime.cpu import cpu_name
from lenet.runtime.threads import threads as use_threads

COUNT = 1000
LENGTH = 5
SEED = 30


def numbers(count: int = COUNT) -> tuple[list[np.ndarray], list[str]]:
    """`count` five-digit strips of MNIST test digits at the paper's spacing, and their texts."""
    images, labels = read_split("mnist", "test")
    s = sample_strings(images, labels, count, LENGTH, "paper", np.random.default_rng(SEED))
    return s.images, s.texts


def _png(strip: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(255 - strip).save(buf, "PNG")
    return buf.getvalue()


def _timed(fn: Callable[[], list[Any]], repeats: int) -> tuple[float, float, list[Any]]:
    """numbers/s of fn and its CPU milliseconds a number (this process, every thread), the
    medians of `repeats` timed runs after one warm-up; and its output. The CPU time is what a
    busy machine does not inflate: 1000 / it is one free core's rate."""
    out = fn()
    rates, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        rates.append(len(out) / (time.perf_counter() - t0))
        cpu.append((time.process_time() - c0) * 1e3 / len(out))
    return statistics.median(rates), statistics.median(cpu), out


def run(threads: int = 2, repeats: int = 3, method: str = "sdnn", count: int = COUNT,
        weights: str | None = None) -> dict[str, Any]:
    """Every figure, as one JSON-ready dict (`weights`: the reader's, for sdnn, or the digit
    weights, for the segmenting methods; default: the bundled defaults)."""
    with use_threads(threads):
        return _run(threads, repeats, method, count, weights)


def _run(threads: int, repeats: int, method: str, count: int, weights: str | None
         ) -> dict[str, Any]:
    strips, texts = numbers(count)
    pngs = [_png(s) for s in strips]
    chosen: dict[str, Any] = {} if weights is None else {
        "weights" if method == "sdnn" else "digits": weights}
    reader = Reader(method=method, **chosen)
    shared = Reader(method=method, workers=threads, **chosen)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lenet-bench-read-") as tmp:
        for i, data in enumerate(pngs):
            (Path(tmp) / f"{i:04d}.png").write_bytes(data)
        cases: dict[str, Callable[[], list[Any]]] = {
            "arrays": lambda: reader(strips),
            "arrays_workers": lambda: shared(strips),
            "png_bytes": lambda: reader(pngs),
            "png_bytes_workers": lambda: shared(pngs),
            "png_files": lambda: read_files(reader, [tmp], columns=False),
            "png_files_workers": lambda: read_files(shared, [tmp], columns=False)}
        for name, fn in cases.items():
            rate, cpu_ms, out = _timed(fn, repeats)
            rows[name] = {"numbers_per_s": rate, "cpu_ms_per_number": cpu_ms,
                          "accuracy": float(np.mean([_text(r) == t
                                                     for r, t in zip(out, texts, strict=True)]))}
        if method == "sdnn" and weights is None:  # what the command reads with
            rows.update(_cold(tmp, threads, repeats, count))
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_name(),
            "threads": threads, "method": method, "weights": weights, "numbers": count,
            "length": LENGTH, "repeats": repeats, "rows": rows,
            "load_average_after": load_average()}


def _cold(folder: str, threads: int, repeats: int, count: int) -> dict[str, Any]:
    """The rows of fresh processes: ``first_call`` of :func:`first_call` in a child (one
    process, then `threads` processes sharing the files), and the whole ``lenet read`` command
    (its default: one process a free core), in numbers/s, medians of `repeats` children."""
    rows: dict[str, Any] = {}
    for name, workers in (("first_call", 1), ("first_call_workers", threads)):
        seconds = [run_json([sys.executable, "-m", "lenet.bench.reading", "--first-call", folder,
                             "--threads", str(threads), "--workers", str(workers)]
                            )[0]["seconds"] for _ in range(repeats)]
        rows[name] = {"numbers_per_s": count / statistics.median(seconds)}
    command = [sys.executable, "-m", "lenet", "read", folder]
    whole = []
    for _ in range(repeats):
        done = jobs.run(command, capture=True)
        if done.returncode != 0:
            raise LenetError(f"lenet read failed in the bench:\n{done.stderr}")
        whole.append(done.seconds)
    rows["command"] = {"numbers_per_s": count / statistics.median(whole),
                       "seconds": statistics.median(whole)}
    return rows


def first_call(folder: str, threads: int, workers: int) -> dict[str, float]:
    """Seconds of a fresh process's first :func:`~lenet.inference.files.read_files` of
    `folder` (the reader loaded first), as ``lenet read DIR --workers W`` makes it."""
    with use_threads(threads):
        reader = Reader(workers=workers)
        started = time.perf_counter()
        read_files(reader, [folder], columns=False)
        return {"seconds": time.perf_counter() - started}


def _text(result: Any) -> str:
    """A Reading's text, or a file result's (``lenet read``'s dicts)."""
    return result.get("text", "") if isinstance(result, dict) else result.text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lenet.bench.reading",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--count", type=int, default=COUNT)
    p.add_argument("--method", choices=("sdnn", "segment", "components"), default="sdnn")
    p.add_argument("--weights", default=None, help="default: the bundled reader (or digits)")
    p.add_argument("--first-call", metavar="DIR", help=argparse.SUPPRESS)  # a child of _cold
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.first_call:
        print(json.dumps(first_call(args.first_call, args.threads, args.workers)))
        return 0
    print(json.dumps(run(args.threads, args.repeats, args.method, args.count, args.weights),
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
