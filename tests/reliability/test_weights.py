"""Forged weights that carry a *valid* SHA-256 (re-signed with lenet's own digest) are still
refused: the checksum proves a file undamaged, not sensible. Each is one line and exit 2 from
`lenet predict`, and a WeightsError from the API, never a traceback, a 500 or "nan"."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lenet import cli
from lenet.errors import WeightsError
from lenet.models import create, get_spec, weights
from tests.commands.cli import lenet

Tensors = dict[str, torch.Tensor]


def _genuine() -> tuple[Tensors, dict]:
    torch.manual_seed(0)
    model = create("lenet5")
    meta = weights.WeightsMeta("lenet5", get_spec("lenet5").preprocessing, "mnist",
                               [str(i) for i in range(10)], 0.99)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return tensors, json.loads(json.dumps(meta.to_dict()))


def _forge(path: Path, edit: Callable[[Tensors, dict], None]) -> Path:
    """A lenet5 weights file with `edit` applied, then signed as lenet signs (weights.encode)."""
    tensors, meta = _genuine()
    edit(tensors, meta)
    path.write_bytes(weights.encode(tensors, weights.METADATA_KEY, meta))
    return path


def _nested_header(path: Path) -> Path:
    """A genuine, correctly signed file whose safetensors JSON header also holds a list nested
    100,000 deep (the digest covers the lenet metadata and tensors, not this key)."""
    data = _forge(path, lambda t, m: None).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].rstrip(b" ")
    header = header[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n:])
    return path


def _nested_metadata(path: Path) -> Path:
    """A list nested 100,000 deep inside the lenet metadata itself, with the right digest
    (computed as lenet.models.weights.digest does, by hand, since json cannot serialize it)."""
    tensors, meta = _genuine()
    canonical = json.dumps(dict(meta, note="@"), sort_keys=True, separators=(",", ":"))
    body = canonical.replace('"@"', "[" * 100_000 + "]" * 100_000).encode()
    h = hashlib.sha256(b"lenet-meta:%d;" % len(body) + body)
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    text = body[:-1].decode() + f',"sha256":"{h.hexdigest()}"}}'
    from safetensors.torch import save

    path.write_bytes(save(tensors, metadata={weights.METADATA_KEY: text}))
    return path


def _set(field: str, value) -> Callable[[Tensors, dict], None]:
    return lambda t, m: m["preprocessing"].update({field: value})


def _nan(t: Tensors, m: dict) -> None:
    t["c1.weight"] = t["c1.weight"].clone()
    t["c1.weight"][0, 0, 0, 0] = float("nan")


def _reshape(t: Tensors, m: dict) -> None:
    t["c1.weight"] = torch.zeros(7, 1, 5, 5)


FORGED = {  # name -> (maker, what the one line says)
    "nested header": (_nested_header, "nested too deeply"),
    "nested metadata": (_nested_metadata, "nested too deeply"),
    "std 0": (lambda p: _forge(p, _set("std", 0.0)), "invalid preprocessing: std 0.0"),
    "std NaN": (lambda p: _forge(p, _set("std", float("nan"))), "invalid preprocessing: std"),
    "pad 3": (lambda p: _forge(p, _set("pad", 3)), "makes 34x34 inputs, but model 'lenet5' "
                                                    "takes 28x28"),
    "pad -1": (lambda p: _forge(p, _set("pad", -1)), "invalid preprocessing: pad -1"),
    "resize 3000": (lambda p: _forge(p, _set("resize", 3000)),
                    "invalid preprocessing: resize 3000"),
    "NaN tensor": (lambda p: _forge(p, _nan), "tensor c1.weight holds NaN"),
    "wrong shape": (lambda p: _forge(p, _reshape), "c1.weight is float32 (7, 1, 5, 5), "
                                                   "expected float32 (6, 1, 5, 5)"),
    "float64 tensor": (lambda p: _forge(p, lambda t, m: t.update(
        {"output.bias": t["output.bias"].double()})), "output.bias is float64"),
    "missing tensor": (lambda p: _forge(p, lambda t, m: t.pop("output.bias")),
                       "missing output.bias"),
    "wrong class count": (lambda p: _forge(p, lambda t, m: m["classes"].pop()),
                          "9 class names for the 10 outputs"),
    "unknown model": (lambda p: _forge(p, lambda t, m: m.update(model="lenet9")),
                      "unknown model 'lenet9'"),
}


@pytest.fixture(scope="module")
def forged(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forged")
    return {name: make(root / f"{name.replace(' ', '-')}.safetensors")
            for name, (make, _) in FORGED.items()}


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory) -> Path:
    arr = np.full((60, 60), 255, np.uint8)
    arr[10:50, 27:33] = 0
    path = tmp_path_factory.mktemp("digit") / "one.png"
    Image.fromarray(arr).save(path)
    return path


def test_the_genuine_file_loads(tmp_path) -> None:
    path = _forge(tmp_path / "ok.safetensors", lambda t, m: None)
    model, meta = weights.load_model(path)
    assert meta.model == "lenet5" and len(meta.classes) == 10
    for name, tensor in weights.read(path)[0].items():
        assert torch.equal(model.state_dict()[name], tensor), name


@pytest.mark.parametrize("name", FORGED)
def test_forged_weights_are_a_weights_error(forged, name: str) -> None:
    path = forged[name]
    for call in (weights.read, weights.load_model):
        with pytest.raises(WeightsError) as e:
            call(path)
        message = str(e.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert FORGED[name][1] in message


@pytest.mark.parametrize("name", FORGED)
def test_forged_weights_are_one_line_and_exit_2_in_process(forged, digit_png, name: str,
                                                            capsys) -> None:
    assert cli.main(["predict", str(forged[name]), str(digit_png)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("lenet: error: ")
    assert FORGED[name][1] in err


@pytest.mark.parametrize("name", ["nested header", "std 0"])  # the rest: in process
def test_forged_weights_one_line_and_exit_2_from_the_command(forged, digit_png,
                                                             name: str) -> None:
    proc = lenet("predict", str(forged[name]), str(digit_png), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("lenet: error: ")
    assert FORGED[name][1] in proc.stderr and "Traceback" not in proc.stderr


def test_a_sparse_6_gb_weights_file_is_one_line_not_a_memory_error(tmp_path, digit_png,
                                                                   capsys) -> None:
    # Was (issue 32): a MemoryError traceback; now refused by its size before any read.
    from lenet.storage import tensorfile

    path = tmp_path / "huge.safetensors"
    with path.open("wb") as f:
        f.truncate(6 * 2**30)  # sparse: no disk space taken
    with pytest.raises(WeightsError, match=f"more than a lenet weights file can be .at most "
                                           f"{tensorfile.MAX_BYTES:,}"):
        weights.read(path)
    assert cli.main(["predict", str(path), str(digit_png)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "6,442,450,944 bytes" in err


def test_a_fifo_as_weights_file_never_blocks(tmp_path) -> None:
    import os

    from lenet.storage import tensorfile

    path = tmp_path / "pipe.safetensors"
    os.mkfifo(path)
    with pytest.raises(WeightsError, match="not a regular file"):
        tensorfile.read_bytes(path, what="weights file")
