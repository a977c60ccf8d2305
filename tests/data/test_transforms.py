"""Device-side preprocessing: what background and ink become, and the paper's padding; and
its user's side, DigitTransform (Weights.transforms()), with torchvision's contract."""

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


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


# --------------------------------------------------------------------------- DigitTransform
# The user's side of Preprocessing (Weights.transforms()): torchvision's contract.

def _to_tensor(img: object) -> torch.Tensor:
    """torchvision's ToTensor on an "L" image, written out (torchvision is not installed)."""
    import numpy as np

    return torch.from_numpy(np.asarray(img, dtype=np.float32) / np.float32(255))[None]


def _transforms() -> list:
    """Every bundled weights' transform, and ones that resize and deslant."""
    from lenet.data.transforms import DigitTransform, Preprocessing
    from lenet.models import get_weights, list_pretrained

    return [*(get_weights(n).transforms() for n in list_pretrained()),
            DigitTransform(Preprocessing(mean=0.1, std=0.3, pad=6, resize=16)),
            DigitTransform(Preprocessing(mean=0.5, std=0.5, pad=2, deslant=True))]


@pytest.mark.slow
def test_torchvision_loop_with_to_tensor_and_weights_transforms_gets_the_recorded_accuracy(
        mnist_ready: None) -> None:
    # Issue 31: MNIST(transform=ToTensor()) then weights.transforms() gave 0.1135 (the float
    # [0, 1] pixels were read as 0..255 levels). The whole test set, as the manifest records.
    from torch.utils.data import DataLoader

    import lenet
    from lenet.data import MNIST, Compose

    model = lenet.create_model("lenet5", pretrained=True).eval()
    weights = lenet.models.get_weights("lenet5")
    test = MNIST(train=False, transform=Compose([_to_tensor, weights.transforms()]))
    right = 0
    with torch.inference_mode():
        for images, labels in DataLoader(test, batch_size=1000):
            assert images.shape == (len(labels), 1, 28, 28) and images.dtype == torch.float32
            right += int((model(images).argmax(1) == labels).sum())
    assert abs((10_000 - right) - weights.meta["test_errors"]) <= 1
    assert right / 10_000 == pytest.approx(weights.test_accuracy, abs=1e-4)


def test_the_documented_path_gives_pil_items_to_the_transform_and_batches(
        mnist_ready: None) -> None:
    from torch.utils.data import DataLoader

    from lenet.data import MNIST
    from lenet.models import get_weights

    t = get_weights("lenet5").transforms()
    test = MNIST(train=False, transform=t)
    images, _ = next(iter(DataLoader(test, batch_size=64)))
    assert images.shape == (64, 1, 28, 28)
    assert torch.equal(images, t.preprocessing(test.data[:64]))  # the fast path's numbers
    assert "DigitTransform(" in repr(test) and "(x - 0.5) / 0.5" in repr(test)
    assert pickle.loads(pickle.dumps(t)) == t  # DataLoader workers get a copy of it


def test_pil_uint8_and_float_inputs_give_identical_outputs(mnist_test) -> None:
    import numpy as np
    from PIL import Image

    from lenet.data import ToTensor

    images = mnist_test[0][:16]
    for t in _transforms():
        # What training and evaluate feed, for the same batch (deslant's float sums may differ
        # in the last bit between batch sizes: each form is compared at the same size).
        fast = t.preprocessing(torch.from_numpy(images))
        for digit in images:
            u8 = torch.from_numpy(digit)
            one = t.preprocessing(u8[None])[0]
            forms = [Image.fromarray(digit), u8, u8[None], digit, digit[None],
                     u8.float() / 255, u8.double() / 255, (u8.float() / 255).half(),
                     ToTensor()(Image.fromarray(digit)), _to_tensor(Image.fromarray(digit)),
                     u8.long(), digit.astype(np.float64) / 255]
            for form in forms:
                out = t(form)
                assert out.shape == (1, t.input_size, t.input_size), (t, type(form))
                assert torch.equal(out, one), (t, type(form), getattr(form, "dtype", None))
        for batch in (torch.from_numpy(images), torch.from_numpy(images)[:, None],
                      torch.from_numpy(images)[:, None].float() / 255, images):
            assert torch.equal(t(batch), fast), t


@pytest.mark.parametrize("dtype", ["uint16", "uint64", "int8", "int64", ">u2", "float16",
                                   ">f4", "float64"])
def test_every_integer_and_float_dtype_of_an_array_is_read_as_gray_levels(dtype: str) -> None:
    import numpy as np

    from lenet.models import get_weights

    t = get_weights("lenet5").transforms()
    digits = np.random.default_rng(0).integers(0, 128, (3, 28, 28), dtype=np.uint8)
    dt = np.dtype(dtype)
    x = digits.astype(dt) if dt.kind in "iu" else (digits / 255).astype(dt)
    assert torch.equal(t(x), t(digits))


def test_the_transform_leaves_its_input_alone() -> None:
    from lenet.models import get_weights

    t = get_weights("lenet5").transforms()
    x = torch.rand(1, 28, 28)
    before = x.clone()
    t(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("stats", [((0.1307,), (0.3081,)), ((0.5,), (0.5,))])
def test_a_tensor_normalized_with_other_statistics_is_refused(stats: tuple) -> None:
    from PIL import Image

    from lenet.data import Compose, Normalize, ToTensor
    from lenet.models import get_weights

    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 4, 16, 24))
    normalized = Compose([ToTensor(), Normalize(*stats)])(digit)
    with pytest.raises(ValueError, match=r"looks already normalized .*give ToTensor's output "
                                         r"in \[0, 1\] or uint8 0\.\.255, with no Normalize"):
        get_weights("lenet5").transforms()(normalized)


@pytest.mark.parametrize("bad,error,needle", [
    (torch.full((28, 28), 255.0), ValueError, r"float pixels up to 255: floats must lie in \["),
    (torch.full((28, 28), float("nan")), ValueError, "NaN or infinity"),
    (torch.full((28, 28), float("inf")), ValueError, "NaN or infinity"),
    (torch.full((28, 28), 300), ValueError, "integer pixels from 300 to 300"),
    (torch.full((28, 28), -1), ValueError, "integer pixels from -1"),
    (torch.zeros(28, 28, dtype=torch.bool), TypeError, "dtype torch.bool"),
    (torch.zeros(32, 32, dtype=torch.uint8), ValueError, r"shape \(32, 32\)"),
    (torch.zeros(2, 3, 28, 28, dtype=torch.uint8), ValueError, r"shape \(2, 3, 28, 28\)"),
    (torch.zeros(784, dtype=torch.uint8), ValueError, r"shape \(784,\)"),
    ([[0] * 28] * 28, TypeError, "got list: expected a PIL image, a torch tensor or a numpy"),
    ("digit.png", TypeError, "got str"),
])
def test_inputs_it_cannot_take_are_clear_errors(bad: object, error: type, needle: str) -> None:
    from lenet.models import get_weights

    with pytest.raises(error, match=needle) as e:
        get_weights("lenet5").transforms()(bad)
    message = str(e.value)
    assert "\n" not in message
    assert "(28, 28)" in message or "PIL image" in message  # what it takes
    assert error is TypeError or "uint8" in message  # and in which dtypes and ranges


def test_a_huge_array_is_refused_by_its_shape_before_it_is_copied() -> None:
    import tracemalloc

    import numpy as np

    from lenet.models import get_weights

    t = get_weights("lenet5").transforms()
    huge = np.broadcast_to(np.float64(0.5), (10_000, 10_000))  # a view: 800 MB if copied
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"input of shape \(10000, 10000\)"):
            t(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak


def test_pil_images_it_cannot_take_are_clear_errors() -> None:
    from PIL import Image

    from lenet.models import get_weights

    t = get_weights("lenet5").transforms()
    with pytest.raises(ValueError, match="PIL image of 32x32 pixels: expected one MNIST-style"):
        t(Image.new("L", (32, 32)))
    with pytest.raises(ValueError, match="PIL image of mode RGBA: expected mode L"):
        t(Image.new("RGBA", (28, 28)))
    assert torch.equal(t(Image.new("RGB", (28, 28), (255, 255, 255))),
                       t(torch.full((28, 28), 255, dtype=torch.uint8)))


def test_the_repr_shows_the_preprocessing() -> None:
    from lenet.data.transforms import DigitTransform, Preprocessing

    text = repr(DigitTransform(Preprocessing(mean=0.1, std=0.3, pad=6, resize=16)))
    assert text.startswith("DigitTransform(\n") and text.endswith("\n)")
    for part in ("resize=16, pad=6", "(x - 0.1) / 0.3", "float32 (1, 28, 28)", "uint8 0..255"):
        assert part in text, text


@pytest.mark.fuzz
@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
@settings(deadline=None)
def test_fuzz_every_form_of_random_digits_gives_the_fast_paths_numbers(n: int, seed: int
                                                                       ) -> None:
    from lenet.data.transforms import DigitTransform, Preprocessing

    g = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    for prep in (Preprocessing(0.5, 0.5), Preprocessing(0.1, 0.3, pad=2, resize=16)):
        t, fast = DigitTransform(prep), prep(digits)
        assert torch.equal(t(digits.float() / 255), fast if n > 1 else fast[0])
        assert torch.equal(t(digits[:, None].double() / 255), fast)
