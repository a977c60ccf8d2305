"""timm's contract for `create_model`: load the weights that fit, reset the rest and say which;
``arch.tag`` names; `in_chans`; `list_models`; arguments checked before anything is built; and
``torch.hub.load`` from a checkout (hubconf.py)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lenet
from lenet import models
from lenet.errors import ConfigError
from lenet.models import hub

ROOT = Path(__file__).resolve().parents[2]
BODY = ("c1.weight", "c1.bias", "c3.weight", "c3.bias", "c5.weight", "c5.bias", "f6.weight",
        "f6.bias")


def test_a_new_head_keeps_the_bundled_body_tensor_by_tensor(
        caplog: pytest.LogCaptureFixture) -> None:
    bundled, _ = models.get_weights("lenet5").read()
    fresh_head = models.create("lenet5", num_classes=47).output
    with caplog.at_level(logging.WARNING, logger="lenet"):
        model = lenet.create_model("lenet5", pretrained=True, num_classes=47)
    state = model.state_dict()
    assert set(state) == {*BODY, "output.weight", "output.bias"}
    for key in BODY:
        assert torch.equal(state[key], bundled[key]), key
    assert state["output.weight"].shape == (47, 84) and state["output.bias"].shape == (47,)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 47)
    # The head is a fresh one, initialized as an unloaded model's is (same kind of values).
    assert state["output.weight"].abs().max() <= fresh_head.weight.abs().max() * 2
    assert model.pretrained_weights is not None and model.pretrained_weights.name == "lenet5"
    [record] = [r for r in caplog.records if r.name == "lenet"]
    assert record.levelno == logging.WARNING
    assert "output.bias, output.weight" in record.getMessage()
    assert "c1" not in record.getMessage()


def test_weights_that_fit_are_loaded_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lenet"):
        model = models.create("lenet5", pretrained=True, num_classes=10)
    assert not caplog.records
    bundled, _ = models.get_weights("lenet5").read()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in bundled.items())


def test_tags_name_the_weights_by_dataset() -> None:
    assert models.list_models(pretrained=True) == [
        "lenet5-1998.mnist", "lenet5-sigmoid.fashion-mnist", "lenet5-tanh.mnist", "lenet5.mnist",
        "lenet5.real-mnist"]  # a second lenet5 on MNIST: lenet5-real (issue 30)
    tagged = models.create("lenet5.mnist", pretrained=True)
    plain = models.create("lenet5", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(tagged.state_dict().values(),
                                                 plain.state_dict().values(), strict=True))
    # The existing names keep working: lenet5-sigmoid's default weights are its Fashion-MNIST
    # ones, and a tag alone (pretrained=False) builds a fresh model, as in timm.
    sigmoid = models.create("lenet5-sigmoid", pretrained=True).pretrained_weights
    assert sigmoid is not None and sigmoid.dataset == "fashion-mnist"
    assert models.create("lenet5-sigmoid.fashion-mnist").pretrained_weights is None
    assert models.get_weights("lenet5-tanh.mnist").name == "lenet5-tanh"
    with pytest.raises(ConfigError, match=r"no pretrained weights tagged 'lenet5\.fashion'; "
                                          r"lenet5's: lenet5\.mnist"):
        models.create("lenet5.fashion", pretrained=True)
    with pytest.raises(ConfigError, match="no pretrained weights named 'mlp'"):
        models.create("mlp", pretrained=True)


def test_tagged_names_read_as_bundled_weights() -> None:
    from lenet.models import weights

    assert weights.is_bundled("lenet5.mnist") and not weights.is_bundled("lenet5.nope")
    assert lenet.load("lenet5-1998.mnist").model_name == "lenet5-1998"


def test_list_models_filters_like_timm() -> None:
    every = models.list_models()
    assert every[0] == "lenet5" and every == models.names()
    assert models.list_models(pretrained=False) == every  # False does not filter, as in timm
    assert models.list_models("mlp-*") == ["mlp-300", "mlp-1000", "mlp-300-100", "mlp-500-150"]
    assert models.list_models(["linear", "lenet1"]) == ["lenet1", "linear"]
    assert models.list_models("*.mnist", pretrained=True) == [
        "lenet5-1998.mnist", "lenet5-tanh.mnist", "lenet5.mnist"]
    assert models.list_models("nothing*") == []
    assert lenet.list_models is models.list_models


def test_in_chans_spreads_the_grey_filters_over_the_channels() -> None:
    grey = models.create("lenet5", pretrained=True).eval()
    rgb = models.create("lenet5.mnist", pretrained=True, in_chans=3).eval()
    assert rgb.c1.weight.shape == (6, 3, 5, 5)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(rgb(x.repeat(1, 3, 1, 1)), grey(x), atol=1e-5)
    assert torch.equal(rgb.c3.weight, grey.c3.weight)
    assert models.create("lenet5", in_chans=2).c1.weight.shape == (6, 2, 5, 5)
    assert isinstance(models.create("lenet1", in_chans=1), models.LeNetModule)  # its own count
    with pytest.raises(ValueError, match=r"'lenet1' takes grey digits only.*in_chans: lenet5"):
        models.create("lenet1", in_chans=3)


def test_adapt_input_conv_sums_or_spreads() -> None:
    w = torch.randn(6, 3, 5, 5)
    assert torch.allclose(hub.adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    grey = torch.randn(6, 1, 5, 5)
    assert torch.allclose(hub.adapt_input_conv(grey, 4), grey.repeat(1, 4, 1, 1) / 4)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_classes": -1}, ValueError, "num_classes must be from 1 to 100,000, got -1"),
    ({"num_classes": 0}, ValueError, "num_classes must be from 1 to 100,000, got 0"),
    ({"num_classes": 10**12}, ValueError, r"num_classes must be from 1 to 100,000, got 1e\+12"),
    ({"num_classes": models.MAX_CLASSES + 1}, ValueError, "num_classes must be from 1"),
    ({"num_classes": "10"}, TypeError, "num_classes must be an integer, got str '10'"),
    ({"num_classes": 10.0}, TypeError, "num_classes must be an integer, got float"),
    ({"num_classes": True}, TypeError, "num_classes must be an integer, got bool"),
    ({"in_chans": 0}, ValueError, "in_chans must be from 1 to 1,024, got 0"),
    ({"in_chans": 10**9}, ValueError, "in_chans must be from 1 to 1,024"),
    ({"in_chans": None, "num_classes": [3]}, TypeError, "num_classes must be an integer"),
])
def test_bad_arguments_are_refused_before_anything_is_built(
        kwargs: dict, error: type[Exception], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenet.models import registry

    def never(**_: object) -> None:
        raise AssertionError("the model was built")

    spec = dataclasses.replace(models.get_spec("lenet5"), build=never)
    monkeypatch.setitem(registry._REGISTRY, "lenet5", spec)
    with pytest.raises(error, match=match) as info:
        models.create("lenet5", pretrained=True, **kwargs)
    assert isinstance(info.value, ConfigError)  # one `lenet: error:` line from the CLI


def test_a_fixed_head_is_refused_unless_the_count_matches() -> None:
    assert models.create("lenet5-1998", num_classes=10).pretrained_weights is None
    with pytest.raises(ValueError, match=r"'lenet5-1998' has a fixed 10-way output, got "
                                         r"num_classes=47; models that take num_classes: "
                                         r"lenet5, lenet5-tanh"):
        models.create("lenet5-1998", num_classes=47)
    with pytest.raises(TypeError, match="model name must be a string"):
        models.create(models.create("lenet5"))  # type: ignore[arg-type]


def test_torch_hub_loads_from_a_checkout() -> None:
    model = torch.hub.load(str(ROOT), "lenet5", source="local", pretrained=True)
    bundled, _ = models.get_weights("lenet5").read()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in bundled.items())
    head = torch.hub.load(str(ROOT), "lenet5.mnist", source="local", pretrained=True,
                          num_classes=47)
    assert head.output.out_features == 47 and torch.equal(head.c1.weight, bundled["c1.weight"])
    paper = torch.hub.load(str(ROOT), "lenet5-1998", source="local")
    assert paper.pretrained_weights is None


def test_hubconf_imports_the_checkouts_own_lenet_when_none_is_installed(
        tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", checkout / "src",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "hubconf.py", checkout)
    import lenet

    # Wherever lenet is installed (this checkout's src/ when editable, site-packages from an
    # sdist), the child finds no lenet there: only on the other folders of sys.path, which is
    # where hubconf puts the checkout's src/.
    installed = str(Path(lenet.__file__).resolve().parent.parent)
    code = ("import sys, importlib.machinery as m\n"
            "class Elsewhere:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name != 'lenet':\n"
            "            return None\n"
            "        where = [p for p in sys.path if p != sys.argv[1]]\n"
            "        spec = m.PathFinder.find_spec(name, where)\n"
            "        if spec is None:\n"
            "            raise ModuleNotFoundError(\"No module named 'lenet'\", name=name)\n"
            "        return spec\n"
            "sys.meta_path.insert(0, Elsewhere())\n"
            "import torch\n"
            "m = torch.hub.load(sys.argv[2], 'lenet5', source='local', pretrained=True)\n"
            "import lenet; print(lenet.__file__, m.pretrained_weights.name)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, installed, str(checkout)],
                         capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    path, name = out.stdout.split()
    assert path.startswith(str(checkout)) and name == "lenet5"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input_size": 10**6}, r"would hold 119,998,080,021,386 numbers; at most 100,000,000"),
    ({"c1_padding": 10**9}, r"cannot be built with c1_padding=1000000000: Storage size"),
])
def test_constructor_arguments_are_bounded_by_the_model_they_make(kwargs: dict,
                                                                  match: str) -> None:
    with pytest.raises(ValueError, match=match):
        models.create("lenet5", **kwargs)


@pytest.mark.parametrize("name", models.names())
def test_the_shape_only_build_draws_no_random_numbers(name: str) -> None:
    # create() sizes the model on the meta device first: the seeded weights (and the global
    # RNG after them) are those of a plain build.
    torch.manual_seed(0)
    built = models.get_spec(name).build().state_dict()
    after = torch.rand(1)
    torch.manual_seed(0)
    created = models.create(name).state_dict()
    assert _same(created, built) and torch.equal(torch.rand(1), after)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
