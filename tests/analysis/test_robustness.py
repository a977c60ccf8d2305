"""lenet.analysis.robustness: the distortions themselves, and accuracy under them on a real tiny
run."""

from __future__ import annotations

import json

import pytest
import torch

from lenet.analysis import robustness as R
from lenet.errors import ConfigError, WeightsError

SIDE = 28


def _blob(n: int = 1, r0: int = 12, c0: int = 12, size: int = 4) -> torch.Tensor:
    """n uint8 digits, each a white square of `size` px at (r0, c0) on black."""
    x = torch.zeros(n, SIDE, SIDE, dtype=torch.uint8)
    x[:, r0:r0 + size, c0:c0 + size] = 255
    return x


def _centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(B, 2): the ink's mean (column, row) of each digit."""
    rows, cols = torch.meshgrid(torch.arange(SIDE).float(),
                                torch.arange(SIDE).float(), indexing="ij")
    mass = x.float().sum((1, 2))
    return torch.stack([(x * cols).sum((1, 2)) / mass, (x * rows).sum((1, 2)) / mass], 1)


@pytest.fixture(scope="module")
def digits(mnist_test) -> torch.Tensor:
    return torch.from_numpy(mnist_test[0][:64].copy())


def test_every_identity_value_returns_the_digits_unchanged_in_a_new_tensor(digits) -> None:
    for name, kind in R.KINDS.items():
        out = R.distort(name, digits, kind.identity, generator=torch.Generator().manual_seed(1))
        assert out.dtype == torch.float32 and torch.equal(out, digits.float()), name
        floats = digits.float()
        assert R.distort(name, floats, kind.identity).data_ptr() != floats.data_ptr(), name
    # ... and the default grid holds each identity, so every curve passes through the clean
    # accuracy.
    assert all(R.KINDS[k].identity in v for k, v in R.DEFAULT_GRID.items())
    assert list(R.DEFAULT_GRID) == list(R.KINDS)
    assert all(7 <= len(v) <= 13 for v in R.DEFAULT_GRID.values())


def test_rotation_by_90_degrees_is_counter_clockwise_on_screen(digits) -> None:
    bar = torch.zeros(1, SIDE, SIDE)
    bar[0, 13:15, 16:26] = 255  # from the centre to the right
    up = R.rotate(bar, 90)
    expected = torch.zeros(1, SIDE, SIDE)
    expected[0, 2:12, 13:15] = 255  # from the centre up
    assert (up - expected).abs().max() < 1e-3
    # 90 degrees maps pixel centres onto pixel centres: the same as rot90, on real digits too.
    assert (R.rotate(digits, 90) - torch.rot90(digits.float(), 1, (1, 2))).abs().max() < 1e-2
    assert (R.rotate(digits, -90) - torch.rot90(digits.float(), -1, (1, 2))).abs().max() < 1e-2


def test_shift_moves_the_centre_of_mass_by_the_amount_in_turn_right_down_left_up() -> None:
    x = _blob(5)
    moved = _centre_of_mass(R.shift(x, 3)) - _centre_of_mass(x)
    expected = torch.tensor([[3.0, 0], [0, 3], [-3, 0], [0, -3], [3, 0]])
    assert torch.allclose(moved, expected, atol=1e-4)
    # The direction belongs to the digit's place in the whole set, not in its batch.
    later = _centre_of_mass(R.shift(x[:2], 2, start=2)) - _centre_of_mass(x[:2])
    assert torch.allclose(later, torch.tensor([[-2.0, 0], [0, -2]]), atol=1e-4)
    assert torch.equal(R.shift(x, 2.0, start=0)[0], R.shift(x[:1], 2.0, start=4)[0])


def test_scale_squeeze_and_shear_change_the_ink_as_their_geometry_says() -> None:
    x = _blob(1, 6, 6, 16)  # a 16x16 square about the centre
    ink = x.float().sum()
    assert R.scale(x, 0.5).sum() / ink == pytest.approx(0.25, rel=0.02)
    assert R.scale(x, 1.5).sum() / ink > 1.5  # grows (and is cut by the field's border)
    narrow = R.squeeze(x, 0.5)
    assert narrow.sum() / ink == pytest.approx(0.5, rel=0.02)
    assert narrow[0, 14].nonzero().flatten().tolist() == list(range(10, 18))  # width 8
    assert narrow[0, :, 14].nonzero().flatten().tolist() == list(range(6, 22))  # height kept
    sheared = R.shear(x, 0.5)  # x' = x + 0.5 y: the bottom moves right, the top left
    assert sheared.sum() / ink == pytest.approx(1.0, rel=0.02)
    cols = torch.arange(SIDE).float()
    top, bottom = sheared[0, 6:10], sheared[0, 18:22]  # rows 12 px apart
    shift = (bottom * cols).sum() / bottom.sum() - (top * cols).sum() / top.sum()
    assert shift == pytest.approx(0.5 * 12, abs=0.3)


def test_erosion_shrinks_the_ink_and_dilation_grows_it(digits) -> None:
    x = digits.float()
    thin, thinner = R.distort("stroke", digits, -0.5), R.distort("stroke", digits, -1)
    thick, thicker = R.distort("stroke", digits, 0.5), R.distort("stroke", digits, 2)
    assert (thinner <= thin).all() and (thin <= x).all()
    assert (x <= thick).all() and (thick <= thicker).all()
    assert thinner.sum() < thin.sum() < x.sum() < thick.sum() < thicker.sum()
    assert thicker.max() == 255 and thinner.min() == 0
    one = _blob(1, 12, 12, 4)  # a 4x4 square: one pixel off each side leaves 2x2, on adds 6x6
    assert int((R.distort("stroke", one, -1) > 0).sum()) == 4
    assert int((R.distort("stroke", one, 1) > 0).sum()) == 36


def test_noise_is_seeded_and_has_the_size_asked_for() -> None:
    grey = torch.full((8, SIDE, SIDE), 128, dtype=torch.uint8)

    def noisy(kind: str, value: float, seed: int) -> torch.Tensor:
        return R.distort(kind, grey, value, generator=torch.Generator().manual_seed(seed))

    for kind, value in (("gaussian", 16.0), ("salt-pepper", 0.2)):
        assert torch.equal(noisy(kind, value, 7), noisy(kind, value, 7)), kind
        assert not torch.equal(noisy(kind, value, 7), noisy(kind, value, 8)), kind
    assert (noisy("gaussian", 16.0, 1) - 128).std() == pytest.approx(16, rel=0.05)
    sp = noisy("salt-pepper", 0.2, 1)
    assert ((sp == 0) | (sp == 255)).float().mean() == pytest.approx(0.2, abs=0.02)
    assert (sp == 255).float().mean() == pytest.approx(0.1, abs=0.015)
    assert set(sp.unique().tolist()) == {0.0, 128.0, 255.0}


def test_select_and_bad_input() -> None:
    assert list(R.select(["shear", "rotation"])) == ["rotation", "shear"]  # in KINDS order
    assert R.select() == {k: tuple(v) for k, v in R.DEFAULT_GRID.items()}
    with pytest.raises(ConfigError, match=r"'rot'.*choose from rotation, scale"):
        R.select(["rot"])
    with pytest.raises(ConfigError, match="unknown distortion 'blur'"):
        R.distort("blur", _blob(), 1.0)
    with pytest.raises(ConfigError, match="as many labels as digits"):
        R.measure(torch.nn.Flatten(), lambda x: x, _blob(3), torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------- a real model
GRID = {"rotation": (0.0, 60.0), "shift": (0.0, 4.0), "gaussian": (0.0, 160.0)}
LIMIT = 300


def test_measure_on_a_real_run(tiny_run) -> None:
    from lenet import data
    from lenet.analysis.evaluate import evaluate_tensors
    from lenet.models import weights
    from lenet.models.losses import make_loss

    model, meta = weights.load_model(tiny_run.run_dir)
    x, y = data.load("mnist", "test")
    x, y = x[:LIMIT], y[:LIMIT]
    threads = torch.get_num_threads()
    curves = R.measure(model, meta.preprocessing, x, y, GRID, seed=3)
    assert torch.get_num_threads() == threads  # one thread while measuring, then as it was
    assert {k: [v for v, _ in pts] for k, pts in curves.items()} == {
        k: list(v) for k, v in GRID.items()}
    clean = evaluate_tensors(model, meta.preprocessing(x), y, make_loss("cross-entropy")).accuracy
    for kind, ((_, at_identity), (_, distorted)) in curves.items():
        assert at_identity == clean, kind  # the same digits, the same model: exactly
        assert distorted < clean - 0.2, kind  # a 60 degree turn, 4 px, sigma 160: far worse
    assert R.measure(model, meta.preprocessing, x, y, GRID, seed=3) == curves  # deterministic
    other_seed = R.measure(model, meta.preprocessing, x, y, {"gaussian": (160.0,)}, seed=4)
    assert other_seed["gaussian"] != curves["gaussian"][1:]  # the noise did change
    assert model.training is False


def test_measure_paths_result_round_trips_through_json(tiny_run, tmp_path) -> None:
    run = tiny_run.run_dir
    r = R.measure_paths([run, run / "model.safetensors"], only=["rotation", "gaussian"],
                        limit=120, device="cpu", seed=1)
    a, b = r["models"]
    assert (a["label"], b["label"]) == (f"lenet5 ({run.name})", f"lenet5 ({run.name})")
    assert a["curves"] == b["curves"] and a["digits"] == 120 and a["dataset"] == "mnist"
    assert a["path"] == str(run / "model.safetensors")
    assert list(r["kinds"]) == ["rotation", "gaussian"]
    assert r["kinds"]["rotation"]["values"] == list(R.DEFAULT_GRID["rotation"])
    path = R.write_result(r, tmp_path)
    assert R.read_result(path) == json.loads(json.dumps(r))
    table = R.format_table(r)
    first = a["curves"]["rotation"][0][1]
    assert table.splitlines()[0].split() == ["rotation", *[f"{v:g}" for v in
                                                           R.DEFAULT_GRID["rotation"]]]
    assert f"{100 * first:.1f}" in table.splitlines()[1]
    with pytest.raises(WeightsError, match="no such weights file"):
        R.measure_paths([tmp_path / "nope"], limit=10)
    with pytest.raises(ConfigError, match="--limit -1"):
        R.measure_paths([run], limit=-1)


@pytest.mark.parametrize("text", ["{", "[]", '{"kinds": {}, "models": []}',
                                  '{"kinds": {"a": {"label": "x", "identity": 0.0}}, '
                                  '"models": [{"label": "m", "digits": 3, '
                                  '"curves": {"a": [[0, "x"]]}}]}'])
def test_a_damaged_result_file_is_one_clear_error(tmp_path, text) -> None:
    path = tmp_path / R.RESULT_NAME
    path.write_text(text)
    with pytest.raises(R.RobustnessError, match=r"not a robustness result.*lenet robustness"):
        R.read_result(path)
