"""Device-side preprocessing: what background and ink become, and the paper's padding."""

import pytest
import torch


def test_preprocessing_maps_background_and_ink_as_specified() -> None:
    from lenet.data.transforms import Preprocessing, scaled

    half = Preprocessing(mean=0.5, std=0.5)
    x = half(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.flatten().tolist() == [-1.0, 1.0]
    paper = scaled(-0.1, 1.175, pad=2)
    y = paper(torch.full((1, 28, 28), 255, dtype=torch.uint8))
    assert y.shape == (1, 1, 32, 32)
    assert y[0, 0, 0, 0].item() == pytest.approx(-0.1)  # padded border is background
    assert y[0, 0, 16, 16].item() == pytest.approx(1.175)


def test_every_registered_models_preprocessing_round_trips() -> None:
    from lenet.data.transforms import Preprocessing
    from lenet.models import get_spec, names

    for name in names():
        prep = get_spec(name).preprocessing
        assert Preprocessing.from_dict(prep.to_dict()) == prep, name
    # A JSON writer may give whole numbers as floats.
    assert Preprocessing.from_dict({"mean": 0, "std": 1, "pad": 2.0, "resize": 16.0}) == \
        Preprocessing(0.0, 1.0, 2, 16)


@pytest.mark.parametrize("fields,needle", [
    ({"std": 0}, "std 0.0"),
    ({"std": -0.5}, "std -0.5"),
    ({"std": float("nan")}, "std nan"),
    ({"std": float("inf")}, "std inf"),
    ({"std": 1e-300}, "std 1e-300"),
    ({"mean": float("nan")}, "mean nan"),
    ({"mean": 1e300}, "mean 1e+300"),
    ({"pad": 17}, "pad 17 (expected 0..16"),
    ({"pad": -1}, "pad -1"),
    ({"resize": 3000}, "resize 3000 (expected 1..112"),
    ({"resize": 0}, "resize 0"),
    ({"pad": 2.5}, "is not a whole number"),
    ({"pad": "2"}, "is not a whole number"),
    ({"pad": True}, "is not a whole number"),
    ({"std": "0.5"}, "is not a number"),
    ({"mean": None}, "is not a number"),
    ({"std": 10**400}, "int too large"),
])
def test_insane_preprocessing_is_a_one_line_weights_error(fields: dict, needle: str) -> None:
    from lenet.data.transforms import Preprocessing
    from lenet.errors import WeightsError

    d = {"mean": 0.5, "std": 0.5, "pad": 0, "resize": None, **fields}
    with pytest.raises(WeightsError, match=r"^w\.safetensors: invalid preprocessing") as e:
        Preprocessing.from_dict(d, source="w.safetensors")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_preprocessing_that_is_not_an_object_is_refused() -> None:
    from lenet.data.transforms import Preprocessing
    from lenet.errors import WeightsError

    for bad in ([0.5, 0.5], "std=0.5", None):
        with pytest.raises(WeightsError, match="expected an object with keys mean, std"):
            Preprocessing.from_dict(bad, source="w")  # type: ignore[arg-type]


def test_deslant_preprocessing_shears_upright_and_round_trips_through_metadata() -> None:
    from lenet.data.deslant import moments
    from lenet.data.transforms import Preprocessing
    from lenet.errors import WeightsError

    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    for row in range(6, 22):  # a bar leaning right by 0.5 px per row
        col = 14 + (14 - row) // 2
        img[0, row, col - 1:col + 2] = 255
    plain, upright = Preprocessing(), Preprocessing(deslant=True)
    mu11 = lambda x: moments(x[:, 0])[3].abs().item()  # noqa: E731
    assert mu11(upright(img)) < 0.05 * mu11(plain(img))
    assert Preprocessing.from_dict(upright.to_dict()) == upright
    assert Preprocessing.from_dict({"mean": 0, "std": 1, "pad": 0, "resize": None}) == plain
    with pytest.raises(WeightsError, match="deslant"):
        Preprocessing.from_dict({**upright.to_dict(), "deslant": "yes"})
