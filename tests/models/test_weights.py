import json
import pickle

import pytest
import torch

from lenet.data.transforms import Preprocessing
from lenet.errors import WeightsError
from lenet.models import create, weights


def _meta() -> weights.WeightsMeta:
    return weights.WeightsMeta("lenet5", Preprocessing(0.5, 0.5), "mnist",
                               [str(i) for i in range(10)], 0.99, {"loss": "cross-entropy"})


def test_round_trip_keeps_tensors_and_metadata(tmp_path) -> None:
    torch.manual_seed(0)
    model = create("lenet5")
    path = weights.save(tmp_path / "m.safetensors", model, _meta())
    loaded, meta = weights.load_model(path)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert meta.model == "lenet5" and meta.preprocessing == Preprocessing(0.5, 0.5)
    assert meta.test_accuracy == 0.99 and meta.extra["torch_version"] == torch.__version__
    # A run directory resolves to its model.safetensors.
    weights.save(tmp_path / "model.safetensors", model, _meta())
    assert weights.load_model(tmp_path)[1].model == "lenet5"


def test_pickle_is_refused_without_unpickling(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="never unpickles"):
        weights.read(path)


def test_truncated_file_is_detected(tmp_path) -> None:
    path = weights.save(tmp_path / "m.safetensors", create("lenet5"), _meta())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        weights.read(path)


def test_missing_file_names_the_path(tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"nope\.safetensors"):
        weights.read(tmp_path / "nope.safetensors")


def test_mismatched_tensors_are_reported(tmp_path) -> None:
    meta = _meta()
    meta.model = "lenet5-tanh"
    path = weights.save(tmp_path / "m.safetensors", create("lenet5"), meta)
    with pytest.raises(WeightsError, match="do not match model 'lenet5-tanh'"):
        weights.load_model(path)


def _tensor_offset(path, name: str) -> int:
    """Where tensor `name`'s bytes start in a safetensors file."""
    import json

    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    begin, _ = json.loads(data[8:8 + header_len])[name]["data_offsets"]
    return 8 + header_len + begin


def test_saved_weights_carry_a_sha256_of_tensors_and_metadata(tmp_path) -> None:
    from safetensors import safe_open

    model = create("lenet5")
    path = weights.save(tmp_path / "m.safetensors", model, _meta())
    with safe_open(str(path), "pt") as f:
        stored = json.loads(f.metadata()[weights.METADATA_KEY])
    assert len(stored["sha256"]) == 64
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert stored["sha256"] == weights.digest(tensors, stored)
    # The digest does not leak into the metadata a reader gets back.
    assert "sha256" not in weights.read(path)[1].extra


def test_a_flipped_bit_in_a_tensor_is_detected(tmp_path) -> None:
    path = weights.save(tmp_path / "model.safetensors", create("lenet5"), _meta())
    name = sorted(create("lenet5").state_dict())[0]
    data = bytearray(path.read_bytes())
    data[_tensor_offset(path, name) + 5] ^= 0x01  # still parses; one weight changed
    path.write_bytes(bytes(data))
    for target in (path, tmp_path):  # the file itself, or the run directory holding it
        with pytest.raises(WeightsError, match="damaged or modified: SHA-256 mismatch") as e:
            weights.load_model(target)
        assert str(path) in str(e.value) and "retrain" in str(e.value)


def _rewrite_metadata(path, edit) -> None:
    """Re-serialize `path` with its lenet metadata passed through `edit` (tensors untouched)."""
    from safetensors.torch import load, save

    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8:8 + header_len])["__metadata__"][weights.METADATA_KEY])
    edit(meta)
    path.write_bytes(save(load(data), metadata={weights.METADATA_KEY: json.dumps(meta)}))


def test_edited_metadata_is_detected(tmp_path) -> None:
    path = weights.save(tmp_path / "m.safetensors", create("lenet5"), _meta())
    # A different normalization would silently change every prediction.
    _rewrite_metadata(path, lambda m: m["preprocessing"].update(mean=0.1307))
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        weights.read(path)


def test_weights_without_a_digest_are_refused(tmp_path) -> None:
    path = weights.save(tmp_path / "m.safetensors", create("lenet5"), _meta())
    _rewrite_metadata(path, lambda m: m.pop("sha256"))
    with pytest.raises(WeightsError, match=r"m\.safetensors: no SHA-256 digest.*retrain"):
        weights.read(path)


@pytest.mark.parametrize("keep", [0, 4, 8, 50, -1, -4])
def test_truncated_anywhere_is_detected(tmp_path, keep: int) -> None:
    path = weights.save(tmp_path / "m.safetensors", create("lenet5"), _meta())
    data = path.read_bytes()
    path.write_bytes(data[:keep])  # keep < 0: the last bytes are missing
    with pytest.raises(WeightsError, match=r"m\.safetensors: not a valid safetensors file.*"
                                           "truncated or corrupt"):
        weights.read(path)


def test_torch_save_file_is_refused_without_unpickling(tmp_path) -> None:
    path = tmp_path / "model.pt"
    torch.save(create("lenet5").state_dict(), path)  # a zip archive holding a pickle
    with pytest.raises(WeightsError, match=r"model\.pt: this is a pickle/torch\.save file"):
        weights.read(path)


@pytest.mark.parametrize("protocol", [0, 1, 2, pickle.HIGHEST_PROTOCOL])
def test_pickles_of_every_protocol_are_refused_and_never_run(tmp_path, protocol: int) -> None:
    # Loading this with pickle would create the file `pwned`.
    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil(), protocol=protocol))
    with pytest.raises(WeightsError, match=r"evil\.safetensors"):
        weights.read(path)
    assert not (tmp_path / "pwned").exists()


def test_a_header_length_that_starts_like_a_pickle_still_loads(tmp_path) -> None:
    # The u64 header length opens the file; its first byte can be 0x80, a pickle's PROTO.
    model = create("lenet5")
    for n in range(300):
        meta = _meta()
        meta.extra["note"] = "x" * n
        path = weights.save(tmp_path / "m.safetensors", model, meta)
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no metadata length gave a header length starting with 0x80")
    assert weights.read(path)[1].extra["note"] == "x" * n


def test_foreign_safetensors_file_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"other\.safetensors: safetensors file without "
                                           "lenet metadata"):
        weights.read(path)


def test_check_state_compares_names_shapes_dtypes_and_values() -> None:
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.int64)}
    weights.check_state(expected, {"a": torch.ones(2, 3), "b": torch.ones(4, dtype=torch.int64)},
                        "f")
    cases = [
        ({"a": torch.zeros(2, 3)}, r"^f: tensors do not match the model: missing b; "),
        ({**expected, "c": torch.zeros(1)}, "unexpected c"),
        ({**expected, "a": torch.zeros(3, 2)}, r"a is float32 \(3, 2\), expected float32 "
                                               r"\(2, 3\)"),
        ({**expected, "a": torch.zeros(2, 3, dtype=torch.float16)}, "a is float16"),
        ({**expected, "a": torch.full((2, 3), float("inf"))}, "tensor a holds NaN or infinite"),
    ]
    for got, pattern in cases:
        with pytest.raises(WeightsError, match=pattern) as e:
            weights.check_state(expected, got, "f")
        assert "\n" not in str(e.value) and "retrain" in str(e.value)
    # What a checkpoint reader may ask for: its own wording, and NaN allowed.
    nan = {**expected, "a": torch.full((2, 3), float("nan"))}
    weights.check_state(expected, nan, "ck", what="the checkpoint's model", finite=False)
    with pytest.raises(WeightsError, match=r"^ck: tensors do not match the checkpoint's model: "
                                           r"missing b; .*\(resume from another\)$"):
        weights.check_state(expected, {"a": torch.zeros(2, 3)}, "ck",
                            what="the checkpoint's model", fix="resume from another")


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.update(classes="0123456789"), "classes is str, not a list"),
    (lambda m: m.update(test_accuracy="high"), "test_accuracy 'high' is not a number in 0..1"),
    (lambda m: m.update(test_accuracy=1.5), "test_accuracy 1.5"),
    (lambda m: m.update(preprocessing=[0.5, 0.5]), "invalid preprocessing"),
])
def test_metadata_with_wrong_types_is_refused_even_when_signed(tmp_path, edit, needle) -> None:
    tensors = {k: v.contiguous() for k, v in create("lenet5").state_dict().items()}
    meta = json.loads(json.dumps(_meta().to_dict()))
    edit(meta)
    path = tmp_path / "m.safetensors"
    path.write_bytes(weights.encode(tensors, weights.METADATA_KEY, meta))  # a valid digest
    with pytest.raises(WeightsError, match=r"m\.safetensors: ") as e:
        weights.read(path)
    assert needle in str(e.value)


def test_a_fifo_is_not_a_weights_file(tmp_path) -> None:
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "model.safetensors")
    for target in (tmp_path, tmp_path / "model.safetensors"):  # never opened: no wait
        with pytest.raises(WeightsError, match="not a regular file"):
            weights.read(target)
