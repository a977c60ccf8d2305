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
