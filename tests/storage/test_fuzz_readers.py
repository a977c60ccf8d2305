"""Fuzzing the storage readers (issue 32, item 7): the tensor-file (safetensors) decoder, the
weights and checkpoint readers, and the run dir's config, metrics, job and result readers.

Arbitrary bytes, valid files mutated byte by byte, and valid files whose metadata was replaced
by arbitrary JSON and signed again (so that the checksum passes): each reader gives a valid
result or its module's LenetError subclass (WeightsError, RunDirError), never anything else.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet.errors import WeightsError
from lenet.models import create, weights
from lenet.storage import checkpoint, rundir, tensorfile

pytestmark = pytest.mark.fuzz
QUIET = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.large_base_example])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    # One folder for every example (a function-scoped tmp_path is not reset between them).
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@cache
def _tiny_checkpoint() -> bytes:
    """A genuine checkpoint of a small model (the linear one) with SGD momentum state."""
    model = create("linear")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    opt.step()
    ckpt = checkpoint.Checkpoint(
        epoch=1, step_in_epoch=0, global_step=3, model=model.state_dict(),
        optimizer=opt.state_dict(),
        rng={"torch": torch.get_rng_state(), "order": torch.Generator().get_state()},
        state={"history": [{"epoch": 1}], "train_seconds": 1.0, "epoch_progress": {}},
        run_id="0123456789abcdef")
    with tempfile.TemporaryDirectory() as name:
        return checkpoint.save(Path(name), ckpt).read_bytes()


@cache
def _weights_file() -> bytes:
    return weights.get_weights("lenet5").path.read_bytes()


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for where, value in edits:
        buf[where % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


MUTATIONS = st.tuples(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)),
                               max_size=6),
                      st.none() | st.integers(0, 2**20))


def _resigned(data: bytes, key: str, edit: Any) -> bytes:
    """`data`'s tensors with its metadata changed by `edit(meta)`, signed again."""
    from safetensors.torch import load

    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"][key])
    tensors = load(data)
    edit(meta, tensors)
    meta.pop(tensorfile.DIGEST_KEY, None)
    try:
        return tensorfile.encode(tensors, key, meta)
    except (ValueError, TypeError, OverflowError):  # not JSON-able (nan is): not a file
        return data


@QUIET
@given(st.binary(max_size=4096))
def test_fuzz_tensorfile_decode_of_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(WeightsError):
        tensorfile.decode(data, tensorfile.METADATA_KEY, "x.safetensors", what="weights file")


@QUIET
@given(MUTATIONS)
def test_fuzz_weights_reader_on_a_mutated_genuine_file(folder: Path, mutation) -> None:
    path = folder / "w.safetensors"
    path.write_bytes(_mutate(_weights_file(), *mutation))
    with contextlib.suppress(WeightsError):
        weights.read(path)


@QUIET
@given(st.sampled_from(["model", "dataset", "classes", "preprocessing", "test_accuracy",
                        "extra", "lenet_version", "torch_version"]), JSON)
def test_fuzz_weights_reader_on_resigned_metadata(folder: Path, field: str, value) -> None:
    path = folder / "w.safetensors"
    path.write_bytes(_resigned(_weights_file(), tensorfile.METADATA_KEY,
                               lambda m, _t: m.__setitem__(field, value)))
    with contextlib.suppress(WeightsError):
        weights.read(path)


def _load_checkpoint(folder: Path, data: bytes) -> None:
    path = folder / "epoch-0001.safetensors"
    path.write_bytes(data)
    try:
        ckpt = checkpoint.load(path)
    except WeightsError:
        return
    assert isinstance(ckpt, checkpoint.Checkpoint)


@QUIET
@given(MUTATIONS)
def test_fuzz_checkpoint_reader_on_a_mutated_genuine_file(folder: Path, mutation) -> None:
    _load_checkpoint(folder, _mutate(_tiny_checkpoint(), *mutation))


FIELDS = st.sampled_from([
    ("epoch",), ("step_in_epoch",), ("global_step",), ("format",), ("run_id",), ("state",),
    ("state", "history"), ("state", "train_seconds"), ("state", "epoch_progress"),
    ("state", "epoch_progress", "order_state"), ("optimizer",), ("optimizer", "param_groups"),
    ("optimizer", "scalars")])


def _set(meta: dict, where: tuple[str, ...], value: Any) -> None:
    for key in where[:-1]:
        if not isinstance(meta.get(key), dict):
            meta[key] = {}
        meta = meta[key]
    meta[where[-1]] = value


@QUIET
@given(FIELDS, JSON | st.binary(min_size=5056, max_size=5056).map(list),
       st.integers(0, 1))
def test_fuzz_checkpoint_reader_on_resigned_metadata(folder: Path, field, value,
                                                     mid_epoch: int) -> None:
    def edit(meta: dict, _tensors: dict) -> None:
        meta["step_in_epoch"] = mid_epoch
        _set(meta, field, value)

    _load_checkpoint(folder, _resigned(_tiny_checkpoint(), checkpoint.METADATA_KEY, edit))


@QUIET
@given(st.sampled_from(["rng.torch", "rng.order", "rng.cuda", "optim.0.momentum_buffer",
                        "model.output.weight"]),
       st.binary(min_size=0, max_size=6000), st.sampled_from(["uint8", "float32", "int64"]))
def test_fuzz_checkpoint_reader_on_resigned_tensors(folder: Path, name: str, raw: bytes,
                                                    dtype: str) -> None:
    kind = getattr(torch, dtype)
    size = torch.tensor([], dtype=kind).element_size()
    tensor = torch.frombuffer(bytearray(raw[:len(raw) - len(raw) % size]) or bytearray(size),
                              dtype=kind)

    def edit(_meta: dict, tensors: dict) -> None:
        tensors[name] = tensor.clone()

    _load_checkpoint(folder, _resigned(_tiny_checkpoint(), checkpoint.METADATA_KEY, edit))


@QUIET
@given(st.binary(max_size=2048) | JSON.map(lambda v: json.dumps(v).encode()))
def test_fuzz_run_dir_json_readers(folder: Path, data: bytes) -> None:
    for name, read in ((rundir.CONFIG, rundir.read_config), (rundir.JOB, rundir.read_job),
                       (rundir.RESULT, rundir.read_result)):
        (folder / name).write_bytes(data)
        try:
            got = read(folder)
        except rundir.RunDirError:
            continue
        assert isinstance(got, dict)


@QUIET
@given(st.binary(max_size=2048)
       | st.lists(st.lists(st.sampled_from(["epoch", "test_accuracy", "1", "0.5", "", "nan",
                                            "x", '"', "1e400", "\r", "\x00"]), max_size=5),
                  max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()))
def test_fuzz_metrics_reader(folder: Path, data: bytes) -> None:
    (folder / rundir.METRICS).write_bytes(data)
    try:
        rows = rundir.read_metrics(folder, required=("epoch", "test_accuracy"))
    except rundir.RunDirError:
        return
    assert all(isinstance(r, dict) and "epoch" in r for r in rows)
