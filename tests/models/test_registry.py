import pytest
import torch

from lenet.errors import ConfigError
from lenet.models import count_parameters, create, get_spec, names

# The exact counts of each architecture as its source writes it.
EXPECTED_PARAMS = {"lenet5": 61_706, "lenet5-tanh": 44_426, "lenet5-sigmoid": 61_706,
                   "mlp": 266_610}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts(name: str) -> None:
    assert count_parameters(create(name)) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", names())
def test_every_model_maps_its_input_to_ten_scores(name: str) -> None:
    spec = get_spec(name)
    model = spec.build()
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    x = spec.preprocessing(images)
    assert x.shape == (3, 1, spec.input_size, spec.input_size)
    out = model(x)
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


def test_sigmoid_variant_uses_xavier_uniform_weights() -> None:
    torch.manual_seed(0)
    model = create("lenet5-sigmoid")
    w = model.c5.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5
    assert w.abs().max() <= bound
    # Default PyTorch init would give a far smaller bound (1/sqrt(fan_in)) for this layer.
    assert w.abs().max() > 1 / w.shape[1] ** 0.5


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="lenet5"):
        create("lenet6")
