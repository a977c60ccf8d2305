import json
import pickle

import pytest
import torch

from lenet import weights
from lenet.data.transforms import Preprocessing
from lenet.errors import WeightsError
from lenet.models import create


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
