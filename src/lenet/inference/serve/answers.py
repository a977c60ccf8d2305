"""The work each API call does in a worker thread: preprocess the input, run the network,
and shape the answer (with every layer's activations for ``/api/activations``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lenet.analysis.activations import layer_activations
from lenet.inference.predict import Predictor
from lenet.inference.preprocess import preprocess_image, preprocess_pixels
from lenet.inference.serve.digits import Transform, TransformError, upload_digit
from lenet.inference.serve.digits import apply as apply_transform
from lenet.inference.serve.inputs import (
    checked_pixels,
    input_errors,
    json_doc,
    pixels_from_json,
)
from lenet.inference.serve.limits import ApiError

DECIMALS = 4  # /api/activations rounds every layer value to this many decimals
MAX_LAYER_VALUES = 100_000  # layer values in one /api/activations answer; later layers: null


def feature_maps(predictor: Predictor, digit: np.ndarray) -> dict[str, Any] | None:
    fm = predictor.first_conv_maps(digit)
    if fm is None:
        return None
    maps = fm["maps"]
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    scaled = np.rint((maps - lo) / np.maximum(hi - lo, 1e-12) * 255.0).astype(int)
    return {"layer": fm["layer"], "shape": fm["shape"],
            "maps": [m.reshape(-1).tolist() for m in scaled]}


def answer(predictor: Predictor, digit: np.ndarray) -> dict[str, Any]:
    # Already an MNIST-style uint8 digit (preprocessed, transformed, or sent with
    # "preprocess": false): straight to the network, past predict()'s guesses about raw inputs
    # (a light background is refused there; here it is the digit the user asked about).
    pred = predictor.predict_digits(np.asarray(digit, np.uint8)[None])[0]
    if pred.no_digit:  # no ink left (a transform scaled or shifted it away): "no digit"
        return {"digit": None, "label": None, "confidence": 0.0, "unsure": False,
                "no_digit": True, "probabilities": [0.0] * len(predictor.classes),
                "classes": predictor.classes, "preprocessed": digit.reshape(-1).tolist()}
    return {"digit": pred.index, "label": pred.label, "confidence": pred.confidence,
            "unsure": pred.unsure, "no_digit": False, "probabilities": pred.probabilities,
            "classes": predictor.classes, "preprocessed": digit.reshape(-1).tolist()}


def infer(predictor: Predictor, kind: str, payload: bytes) -> dict[str, Any]:
    """Parse or decode one input and run the network (in a worker thread); every problem with
    the input is a 4xx ApiError."""
    pixels = pixels_from_json(payload) if kind == "json" else None
    with input_errors():
        digit = (preprocess_pixels(pixels) if pixels is not None
                 else preprocess_image(payload, "upload"))
    return {**answer(predictor, digit), "feature_maps": feature_maps(predictor, digit)}


def digit_for_layers(kind: str, payload: bytes, fields: dict[str, str]
                     ) -> tuple[np.ndarray, list[dict[str, Any]], Transform]:
    """/api/activations' input: (the MNIST-style 28x28 digit, pictures of an upload's
    preprocessing steps, the transform to apply). Cheap checks first, decoding last."""
    steps: list[dict[str, Any]] = []
    doc = json_doc(payload) if kind == "json" else None
    pixels = checked_pixels(doc) if kind == "json" else None
    if isinstance(doc, dict):
        preprocess, spec = doc.get("preprocess", True), doc.get("transform")
        if not isinstance(preprocess, bool):
            raise ApiError(422, '"preprocess" must be true or false')
    else:
        preprocess, spec = True, (json_doc(fields["transform"]) if "transform" in fields
                                  else None)
    try:
        transform = Transform.parse(spec)
    except TransformError as e:
        raise ApiError(422, str(e)) from None
    with input_errors():
        if pixels is None:
            digit, steps = upload_digit(payload, "upload")
        elif preprocess:
            digit = preprocess_pixels(pixels)
        else:  # already an MNIST-style digit: the network sees it as it is
            digit = np.rint(np.asarray(pixels, np.float64)).astype(np.uint8).reshape(28, 28)
    return digit, steps, transform


def infer_layers(predictor: Predictor, kind: str, payload: bytes, fields: dict[str, str]
                 ) -> dict[str, Any]:
    """The answer and every layer's activations for one input (in a worker thread)."""
    if predictor.model is None:
        raise ApiError(409, "this server runs an ONNX file; every layer's activations need "
                            "the safetensors weights (serve a run dir or .safetensors file)")
    digit, steps, transform = digit_for_layers(kind, payload, fields)
    seen = apply_transform(digit, transform)
    x = predictor.preprocessing(torch.from_numpy(seen[None].copy()))
    acts = layer_activations(predictor.model, x)
    return {**answer(predictor, seen), "model": predictor.model_name,
            "original": digit.reshape(-1).tolist(), "transform": transform.to_dict(),
            "steps": steps, **acts.to_dict(DECIMALS, MAX_LAYER_VALUES)}
