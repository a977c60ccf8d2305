"""`lenet predict`: recognize digits in image files (see :mod:`lenet.inference.predict`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lenet.commands import options

WEIGHTS_SUFFIXES = (".safetensors", ".onnx")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict", help="recognize digits in image files (PNG, JPEG, BMP, GIF, TIFF)",
        description="Recognize handwritten digits in image files of any size and mode, "
                    "preprocessed exactly as MNIST was made (invert if the paper is light, crop "
                    "to the ink, scale to 20 px, centre by mass in 28x28). One line per file: "
                    "path, digit, confidence, top-k; the digit reads \"7 (unsure)\" when the "
                    "weights' reject margin (0.5 % error on held-out training digits) is not "
                    "met, and \"no digit\" for a blank image. Exit status 1 if any file "
                    "failed.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, directories (searched recursively) or glob patterns; "
                        "a run directory, .safetensors or .onnx file first is the weights "
                        "(the older spelling of --weights)")
    p.add_argument("--weights", metavar="NAME|RUN_DIR|FILE", default=None,
                   help=options.WEIGHTS_HELP + ", or a .onnx file from `lenet export` "
                        "(default: the bundled default weights, lenet5-real, made for photos "
                        "and scans; the faithful LeNet-5 is --weights lenet5)")
    # One JSON array, not options.add_json's "one JSON object": a result per file.
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--top-k", type=int, default=3, metavar="K",
                   help="how many ranked classes to list (default 3)")
    p.add_argument("--save-preprocessed", metavar="DIR",
                   help="write the 28x28 image the network saw for each file, as PNG (DIR is "
                        "checked writable before any work)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default=None,
                   help="default: onnxruntime for a .onnx file, torch otherwise; onnxruntime "
                        "with safetensors weights exports them to ONNX in memory first")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.errors import ConfigError
    from lenet.inference.files import check_save_dir, predict_files
    from lenet.inference.predict import Predictor
    from lenet.runtime.threads import use_free_cores

    weights, inputs = split_weights(args.inputs, args.weights)
    use_free_cores()  # threads for the cores free now: no collapse beside other work
    if args.save_preprocessed is not None:  # before the work, so that no result is lost
        check_save_dir(args.save_preprocessed)
    predictor = Predictor.load(weights, backend=args.backend)
    if not 1 <= args.top_k <= len(predictor.classes):
        raise ConfigError(f"--top-k {args.top_k}: expected 1..{len(predictor.classes)}")
    results = predict_files(predictor, inputs, args.top_k, args.save_preprocessed)
    return options.print_file_results(results, args.json, _format_line, "path")


def split_weights(inputs: list[str], flag: str | None) -> tuple[str, list[str]]:
    """The weights and the images: ``--weights``, else a first argument that is a run directory
    or a weights file (`lenet predict RUN IMAGE...`, the spelling before ``--weights``), else
    the bundled default."""
    from lenet.errors import ConfigError
    from lenet.models.hub import DEFAULT_WEIGHTS  # bundled: works before any training
    from lenet.storage.rundir import WEIGHTS

    first = Path(inputs[0])
    is_weights = (first.is_dir() and (first / WEIGHTS).is_file()) or (
        first.suffix in WEIGHTS_SUFFIXES)
    if flag is None and is_weights:
        if len(inputs) == 1:
            raise ConfigError(f"{inputs[0]} is weights, and no image follows it: give image "
                              "files, folders or globs after it")
        return inputs[0], inputs[1:]
    return flag or DEFAULT_WEIGHTS, inputs


def _format_line(r: dict[str, Any]) -> str:
    """path, label (``7 (unsure)``), confidence and the top-k as label=probability,
    tab-separated; ``path<TAB>no digit`` for a blank image."""
    if r["no_digit"]:
        return f"{r['path']}\tno digit"
    top = " ".join(f"{t['label']}={t['probability']:.4f}" for t in r["top_k"])
    label = f"{r['label']} (unsure)" if r["unsure"] else r["label"]
    return f"{r['path']}\t{label}\t{r['confidence']:.4f}\t{top}"
